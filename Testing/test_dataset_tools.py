"""`dataset stats` and `dataset split` on a copy of the phantom dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from DVTStagingLib.io.dataset import load_dataset, validate_dataset
from DVTStagingLib.io.roi import read_rois
from DVTStagingLib.io.segmentation import read_segmentation
from DVTStagingLib.io.volume import read_volume
from DVTStagingLib.research.dataset_tools import assign_splits, patient_of
from test_cli import assert_user_error, run_cli


@pytest.fixture
def dataset_copy(phantom_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(phantom_dataset.root, root)
    return root


def test_stats_counts_and_sizes_match_the_files(phantom_dataset, capsys):
    code, out, err = run_cli(capsys, "dataset", "stats", phantom_dataset.root, "--json")
    assert code == 0, err
    stats = json.loads(out)
    dataset = phantom_dataset
    assert stats["cases"] == len(dataset.cases)
    for split, entry in stats["splits"].items():
        cases = dataset.split(split)
        assert entry["cases"] == len(cases)
        for stage in dataset.classes:
            assert entry["rois"][stage] == sum(1 for c in cases for lab in c.labels if lab["stage"] == stage)
    assert sum(e["cases"] for e in stats["splits"].values()) == len(dataset.cases)
    # One record per ROI; box sizes from the ROI files, thrombus from the segment inside the box.
    case = next(c for c in dataset.cases if c.rois)
    volume = read_volume(dataset.path(case.image))
    thrombus = read_segmentation(dataset.path(case.segmentation)).mask("thrombus")
    for roi in read_rois(dataset.path(case.rois[0])):
        rec = next(r for r in stats["per_roi"] if r["case"] == case.id and r["roi"] == roi.name)
        assert rec["stage"] == case.stage_of(roi.name)
        assert rec["box_length_mm"] == pytest.approx(float(np.max(roi.size_mm)), abs=0.01)
        inside = thrombus & roi.voxel_mask(volume)
        assert rec["thrombus_voxels"] == int(inside.sum()) > 0
        k, j, i = np.nonzero(inside)
        extent = (np.array([np.ptp(i), np.ptp(j), np.ptp(k)]) + 1) * volume.spacing
        assert rec["thrombus_length_mm"] == pytest.approx(float(extent.max()), abs=0.01)
        assert rec["thrombus_length_mm"] <= rec["box_length_mm"] + 1e-6
    for stage, s in stats["sizes"].items():
        assert s["rois"] == sum(1 for r in stats["per_roi"] if (r["stage"] or "none") == stage)
    # The table form names every split present.
    code, out, _ = run_cli(capsys, "dataset", "stats", phantom_dataset.root)
    assert code == 0
    for split in stats["splits"]:
        assert split in out
    assert "thrombus length mm" in out


def test_split_refuses_existing_splits_without_overwrite(dataset_copy, capsys):
    before = (dataset_copy / "dataset.json").read_bytes()
    code, _, err = run_cli(capsys, "dataset", "split", dataset_copy, "--by", "patient")
    assert_user_error(code, err, "already have a split", "--overwrite")
    assert (dataset_copy / "dataset.json").read_bytes() == before


def test_split_keeps_patients_together_and_stays_valid(dataset_copy, capsys):
    doc = json.loads((dataset_copy / "dataset.json").read_text(encoding="utf-8"))
    ids = [c["id"] for c in doc["cases"]]
    # Cases 0-2 are one patient, 3-4 another ("patient" missing on one: falls back to the case id).
    for n, case in enumerate(doc["cases"]):
        case["patient"] = "P-A" if n < 3 else "P-B"
        case["split"] = "unassigned"
    del doc["cases"][4]["patient"]
    (dataset_copy / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")

    code, out, err = run_cli(capsys, "dataset", "split", dataset_copy, "--seed", "3")
    assert code == 0, err
    assert "train" in out
    dataset = load_dataset(dataset_copy)
    by_id = {c.id: c for c in dataset.cases}
    assert {by_id[i].split for i in ids[:3]} | {by_id[ids[3]].split} <= {"train", "val", "test"}
    assert len({by_id[i].split for i in ids[:3]}) == 1, "one patient's cases share a split"
    assert patient_of(by_id[ids[4]]) == ids[4]
    assert validate_dataset(dataset_copy, deep=False) == []
    assert not (dataset_copy / ".dataset.json.tmp").exists()
    # Same seed, same result (after --overwrite); other fields are untouched.
    first = (dataset_copy / "dataset.json").read_text(encoding="utf-8")
    code, _, err = run_cli(capsys, "dataset", "split", dataset_copy, "--seed", "3", "--overwrite")
    assert code == 0, err
    assert (dataset_copy / "dataset.json").read_text(encoding="utf-8") == first
    after = json.loads(first)
    assert [c["id"] for c in after["cases"]] == ids
    assert all(c.get("patient") == doc["cases"][n].get("patient") for n, c in enumerate(after["cases"]))


def test_split_rejects_bad_fractions(dataset_copy, capsys):
    code, _, err = run_cli(capsys, "dataset", "split", dataset_copy, "--overwrite", "--fractions", "0.5", "0.5", "0.5")
    assert_user_error(code, err, "add up to 1")
    code, _, err = run_cli(capsys, "dataset", "split", dataset_copy, "--fractions", "0.5", "0.5")
    assert code == 2 and "Traceback" not in err


class _Case:
    def __init__(self, cid, patient, stage):
        self.id, self.extra, self.labels = cid, {"patient": patient}, [{"roi": "t", "stage": stage}]


def test_assignment_is_grouped_and_stratified():
    rng = np.random.default_rng(0)
    cases = []
    for p in range(60):
        stage = ("acute", "subacute", "chronic")[p % 3]
        for n in range(int(rng.integers(1, 4))):
            cases.append(_Case(f"c{p}-{n}", f"p{p}", stage))
    splits = assign_splits(cases, seed=1, fractions=(0.6, 0.2, 0.2))
    per_patient = {}
    for c in cases:
        per_patient.setdefault(c.extra["patient"], set()).add(splits[c.id])
    assert all(len(s) == 1 for s in per_patient.values())
    for stage in ("acute", "subacute", "chronic"):
        stage_cases = [c for c in cases if c.labels[0]["stage"] == stage]
        share = {s: sum(splits[c.id] == s for c in stage_cases) / len(stage_cases) for s in ("train", "val", "test")}
        assert share["train"] == pytest.approx(0.6, abs=0.1)
        assert share["val"] == pytest.approx(0.2, abs=0.1)
        assert share["test"] == pytest.approx(0.2, abs=0.1)
    assert assign_splits(cases, seed=1) == splits
    assert assign_splits(cases, seed=2) != splits
