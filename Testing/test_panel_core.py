"""The Slicer-free core behind the panel: staging run files, result.json reading, worklist, labels,
sample study, requirements check."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from DVTStagingLib.core.errors import InputFileError, UserError
from DVTStagingLib.io.roi import BoxROI
from DVTStagingLib.io.volume import Volume, read_volume
from DVTStagingLib.research.annotation import (
    CaseAnnotation,
    check_stage,
    read_annotation,
    study_status,
    write_annotation,
)
from DVTStagingLib.research.worklist import Worklist, find_studies
from DVTStagingLib.slicer.dependencies import (
    FEATURE_PACKAGES,
    NEVER_REPLACE,
    TORCH_REQUIREMENTS,
    missing_requirements,
    read_requirements,
    requirements_for,
)
from DVTStagingLib.slicer.jobs import cli_environment, detect_command, stage_command, write_stage_inputs
from DVTStagingLib.slicer.sample_study import ensure_sample_study, sample_image_uri
from DVTStagingLib.staging.outputs import RESULT_SCHEMA, read_stage_result

REPO = Path(__file__).resolve().parents[1]


def _result(**overrides):
    probs = {"acute": 0.6, "subacute": 0.3, "chronic": 0.1}
    data = {"schema": RESULT_SCHEMA, "stage": "acute", "probabilities": probs,
            "rois": [{"name": "thrombus-1", "stage": "acute", "probabilities": probs, "slice_axis": "k",
                      "slices": [{"index": 4, "probabilities": probs}, {"index": 5, "probabilities": probs}],
                      "thrombus_muscle_ratio": 2.7},
                     {"name": "thrombus-2", "stage": "chronic", "probabilities": probs, "slice_axis": "j",
                      "slices": [], "thrombus_muscle_ratio": None}],
            "model": {"id": "m", "version": "1", "sha256": "ab" * 32}, "device": "cpu", "timings": {}, "input": {}}
    data.update(overrides)
    return data


def test_result_json_is_read_into_table_rows(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(_result()))
    result = read_stage_result(tmp_path)
    rows = result.table_rows()
    assert [r["name"] for r in rows] == ["thrombus-1", "thrombus-2"]
    assert rows[0]["p_acute"] == 0.6 and rows[0]["thrombus_muscle_ratio"] == 2.7
    assert math.isnan(rows[1]["thrombus_muscle_ratio"])
    assert [s.index for s in result.rois[0].slices] == [4, 5]
    assert result.attention_path("local-to-global") is None     # not written in this folder
    assert result.attention_path() is None and rows[0]["reason"] == ""   # the default map: evidence
    with pytest.raises(ValueError, match="unknown map 'sideways'"):
        result.attention_path("sideways")


@pytest.mark.parametrize("broken, message", [
    ({"schema": "dvt-staging/result@0"}, "not a staging result"),
    ({"stage": "hyperacute"}, "not one of"),
    ({"probabilities": {"acute": 1.0}}, "must give"),
    ({"rois": [{"stage": "acute"}]}, "needs a 'name'"),
    ({"rois": [{"name": "a", "stage": "acute", "probabilities": {"acute": 1, "subacute": 0, "chronic": 0},
                "slice_axis": "x"}]}, "slice_axis"),
])
def test_bad_result_json_gives_a_clear_error(tmp_path, broken, message):
    (tmp_path / "result.json").write_text(json.dumps(_result(**broken)))
    with pytest.raises(InputFileError, match=message):
        read_stage_result(tmp_path)


def test_missing_or_garbled_result_json(tmp_path):
    with pytest.raises(InputFileError, match="no result.json"):
        read_stage_result(tmp_path)
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(InputFileError, match="not readable JSON"):
        read_stage_result(tmp_path)


def test_stage_and_detect_commands(tmp_path):
    argv = stage_command("in.nrrd", "out", roi="r.mrk.json", model="vdpf-small-phantom", device="cpu")
    assert argv[:3] == [sys.executable, "-m", "DVTStagingLib"]
    assert argv[3:] == ["stage", "in.nrrd", "--roi", "r.mrk.json", "--out", "out", "--device", "cpu",
                        "--model", "vdpf-small-phantom"]
    assert "--auto-roi" in stage_command("in.nrrd", "out", auto_roi=True)
    with pytest.raises(ValueError):
        stage_command("in.nrrd", "out")
    with pytest.raises(ValueError):
        stage_command("in.nrrd", "out", roi="r", device="gpu")
    assert detect_command("in.nrrd", "o", prefix=["x"]) == ["x", "detect", "in.nrrd", "--out", "o", "--device", "auto"]
    env = cli_environment({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":")[0] == str(REPO / "DVTStaging") and env["PYTHONPATH"].endswith("/elsewhere")


def test_stage_inputs_keep_the_geometry(tmp_path):
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    volume = Volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), [0.7, 0.8, 2.5], [5.0, -3.0, 10.0],
                    direction)
    image, rois = write_stage_inputs(tmp_path, volume, [BoxROI("t", [1, 2, 3], [4, 5, 6])])
    back = read_volume(image)
    assert back.same_geometry(volume) and np.array_equal(back.array, volume.array)
    assert rois.name.endswith(".mrk.json")
    assert write_stage_inputs(tmp_path / "b", volume, None)[1] is None


def test_annotation_status_and_file_round_trip(tmp_path):
    assert study_status(False, False, False) == "new"
    assert study_status(True, False, False) == "staged"
    assert study_status(True, True, False) == "labeled"
    assert study_status(False, False, True) == "reviewed"
    assert check_stage("Sub-acute") == "subacute" and check_stage(None) == ""
    with pytest.raises(ValueError, match="not a stage"):
        check_stage("old")
    annotation = CaseAnnotation({"t1": "acute", "t2": ""}, {"t1": "acute"}, False, "note")
    assert annotation.status == "staged"          # one ROI still unlabeled
    annotation.true_stages["t2"] = "chronic"
    assert annotation.status == "labeled"
    path = write_annotation(tmp_path / "a" / "annotation.json", annotation)
    assert read_annotation(path) == annotation
    path.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(InputFileError, match="not a study annotation"):
        read_annotation(path)


def test_worklist_finds_studies_and_tracks_status(tmp_path):
    for name in ("b/image.nrrd", "a/image.nii.gz", "a/tissues.seg.nrrd", "a/attention.nrrd", "c/labels.nrrd",
                 ".dvt-staging/cases/x/input.nrrd", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    dicom = tmp_path / "d" / "series1"
    dicom.mkdir(parents=True)
    (dicom / "1.dcm").write_bytes(b"\0" * 128 + b"DICM")
    entries = find_studies(tmp_path)
    assert [(e.id, e.kind) for e in entries] == [("a/image.nii.gz", "file"), ("b/image.nrrd", "file"),
                                                 ("d/series1", "dicom-folder")]
    worklist = Worklist.from_folder(tmp_path)
    assert worklist.current.id == "a/image.nii.gz" and worklist.previous() is None
    assert worklist.next().id == "b/image.nrrd"
    folder = worklist.save(worklist.current, CaseAnnotation({"t": "acute"}, {"t": "acute"}, True),
                           rois=[BoxROI("t", [0, 0, 0], [1, 1, 1])])
    assert (folder / "rois.mrk.json").is_file() and worklist.saved_rois(worklist.current)
    assert worklist.status(worklist.entries[1]) == "reviewed"
    assert worklist.counts() == {"new": 2, "staged": 0, "labeled": 0, "reviewed": 1}
    # next_unfinished skips reviewed studies and wraps around.
    worklist.go_to("a/image.nii.gz")
    assert worklist.next_unfinished().id == "d/series1"
    assert worklist.next_unfinished().id == "a/image.nii.gz"
    # A damaged label file does not hide the study.
    (folder / "annotation.json").write_text("{")
    assert worklist.status(worklist.entries[1]) == "new"
    with pytest.raises(UserError, match="holds no studies"):
        Worklist.from_folder(tmp_path / "c")


def test_sample_study_is_generated_into_the_cache_once(tmp_path):
    folder = ensure_sample_study(tmp_path)
    assert (folder / "image.nrrd").is_file() and (folder / "thrombus-1.mrk.json").is_file()
    assert sample_image_uri(tmp_path).startswith("file://") and sample_image_uri(tmp_path).endswith("image.nrrd")
    stamp = (folder / "image.nrrd").stat().st_mtime_ns
    assert ensure_sample_study(tmp_path) == folder and (folder / "image.nrrd").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]   # no half-written leftovers


def test_requirements_file_is_checkable_and_leaves_slicer_packages_alone():
    requirements = read_requirements(REPO / "DVTStaging" / "Resources" / "requirements.txt")
    assert requirements and not any(r.split(">")[0].split("=")[0].strip().lower() in NEVER_REPLACE | {"torch"}
                                    for r in requirements)
    assert missing_requirements(requirements) == []        # the test environment has them all
    assert missing_requirements(["surely-not-installed-dvt-package>=1"]) == ["surely-not-installed-dvt-package>=1"]
    assert missing_requirements(["pytest>=999"]) == ["pytest>=999"]
    with pytest.raises(ValueError, match="Slicer ships"):
        missing_requirements(["numpy>=1"])


def test_each_entry_point_needs_a_known_subset_of_the_requirements():
    path = REPO / "DVTStaging" / "Resources" / "requirements.txt"
    listed = {r.split(">")[0].split("=")[0].strip().lower() for r in read_requirements(path)}
    for feature, names in FEATURE_PACKAGES.items():
        wanted = requirements_for(feature, path)
        assert {w.split(">")[0].lower() for w in wanted} <= listed
        if names != "*":
            assert set(names) <= listed, feature
    assert requirements_for("stage", path) == read_requirements(path)
    assert requirements_for("worklist", path) == []
    with pytest.raises(ValueError, match="unknown feature"):
        requirements_for("render", path)


def test_the_module_asks_for_what_the_package_declares():
    """pyproject's runtime dependencies = Slicer's own + torch (light-the-torch) + requirements.txt."""
    import tomllib

    from packaging.requirements import Requirement

    declared = {Requirement(r).name.lower(): str(Requirement(r).specifier)
                for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    module = {Requirement(r).name.lower(): str(Requirement(r).specifier)
              for r in [*TORCH_REQUIREMENTS, *read_requirements(REPO / "DVTStaging" / "Resources" / "requirements.txt")]}
    assert {n: v for n, v in declared.items() if n not in NEVER_REPLACE} == module
