"""Staging end to end: training (single process, resume, DDP), stage outputs, geometry, checksums, evaluation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from DVTStagingLib.imaging.planes import orientation_for
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois
from DVTStagingLib.io.volume import Volume, read_volume, write_volume
from DVTStagingLib.models.catalog import read_card
from DVTStagingLib.models.config import InputSpec
from DVTStagingLib.phantom.study import make_study, thrombus_roi
from DVTStagingLib.staging.results import validate_result
from DVTStagingLib.staging.slices import prepare_study
from DVTStagingLib.training.metrics import binary_auc, macro_f1, staging_metrics
from test_cli import assert_user_error, run_cli


def _rotation(axis, degrees):
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [x for x in range(3) if x != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


@pytest.fixture(scope="session")
def tiny_model(phantom_dataset, tmp_path_factory):
    """A vdpf-tiny model trained for two epochs on the session's phantom dataset (a wiring check, not a stager)."""
    from DVTStagingLib.models.config import VDPF_TINY
    from DVTStagingLib.training.train import run_training

    out = tmp_path_factory.mktemp("run")
    card = run_training(phantom_dataset.root, VDPF_TINY, out, seed=3, epochs=2, model_id="tiny-test", publish=False)
    assert card is not None and card["metrics"]["val"]["n"] >= 1
    # The card says which dataset trained it, not where that dataset lay on this machine.
    data = card["training_data"]
    assert data["folder"] == phantom_dataset.root.name and len(data["dataset_json_sha256"]) == 64
    assert str(phantom_dataset.root.parent) not in (out / "tiny-test.json").read_text()
    return out / "tiny-test.json"


@pytest.fixture(scope="session")
def oblique_study(tmp_path_factory):
    """A phantom study re-declared on an oblique, axis-permuted grid, with its ROI in that geometry."""
    study = make_study(5, ["subacute"])
    v = study.volume
    direction = _rotation(2, 17.0) @ _rotation(0, 9.0) @ v.direction_lps
    oblique = Volume(v.array, v.spacing, v.origin_lps + [3.5, -2.0, 7.25], direction)
    roi = thrombus_roi(oblique, study.instances == 1, "thrombus-1")
    root = tmp_path_factory.mktemp("oblique")
    write_volume(oblique, root / "image.nrrd")
    write_rois(root / "roi.mrk.json", [roi])
    return root


# -- metrics ----------------------------------------------------------------
def test_metrics_match_hand_computed_values():
    cm = np.array([[2, 1, 0], [0, 3, 1], [0, 0, 1]])
    # F1: acute 2*2/(2+3)=0.8, subacute 2*3/(4+4)=0.75, chronic 2*1/(2+1)=0.667
    assert macro_f1(cm) == pytest.approx((0.8 + 0.75 + 2 / 3) / 3)
    assert binary_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert binary_auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert binary_auc([0.2, 0.3], [1, 1]) is None
    m = staging_metrics([0, 1, 2, 1], np.eye(3)[[0, 1, 2, 2]], ["acute", "subacute", "chronic"])
    assert m["accuracy"] == 0.75 and m["confusion"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


# -- slice geometry ---------------------------------------------------------
def test_a_view_index_maps_back_to_the_voxel_it_shows():
    import itertools

    from DVTStagingLib.imaging.planes import Orientation

    rng = np.random.default_rng(0)
    array = rng.random((5, 6, 7))
    for axes in itertools.permutations(range(3)):
        for flips in itertools.product([False, True], repeat=3):
            orientation = Orientation(axes, flips, (1.0, 1.0, 1.0))
            view = orientation.apply(array)
            for index in itertools.product(*(range(n) for n in view.shape)):
                assert array[orientation.array_index(index, view.shape)] == view[index]


@pytest.mark.parametrize("perm,flips", [((0, 1, 2), (False, False, False)), ((2, 0, 1), (True, False, True)),
                                        ((1, 2, 0), (False, True, False))])
def test_the_view_is_the_same_whatever_the_voxel_order(perm, flips):
    """Storing the same anatomy with permuted/flipped axes gives the same model slices."""
    study = make_study(2, ["acute"])
    v = study.volume
    arr = np.transpose(v.array, perm)                           # numpy axes
    ijk_perm = [2 - p for p in perm][::-1]                      # new i, j, k in old ijk terms
    direction = v.direction_lps[:, ijk_perm].copy()
    spacing = v.spacing[ijk_perm]
    origin = v.origin_lps.copy()
    for ax, flip in enumerate(flips):                           # numpy axis ax = ijk axis 2 - ax
        if flip:
            arr = np.flip(arr, ax)
            a = 2 - ax
            origin = origin + direction[:, a] * spacing[a] * (arr.shape[ax] - 1)
            direction[:, a] *= -1
    other = Volume(np.ascontiguousarray(arr), spacing, origin, direction)
    spec = InputSpec()
    a, b = prepare_study(v, spec), prepare_study(other, spec)
    assert a.scaled.shape == b.scaled.shape
    np.testing.assert_array_equal(a.scaled, b.scaled)
    o = orientation_for(other, "axial")
    np.testing.assert_array_equal(o.undo(o.apply(other.array)), other.array)


# -- stage ------------------------------------------------------------------
def test_stage_writes_valid_outputs_in_the_input_geometry(tiny_model, oblique_study, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", oblique_study / "roi.mrk.json",
                           "--model", tiny_model, "--out", out, "--device", "cpu")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert validate_result(result) == []
    image = read_volume(oblique_study / "image.nrrd")
    for name in ("attention.nrrd", "attention-global-to-local.nrrd"):
        overlay = read_volume(out / name)
        assert overlay.same_geometry(image, atol=1e-6)
        assert overlay.array.min() >= 0 and overlay.array.max() <= 1
    roi = read_rois(oblique_study / "roi.mrk.json")[0]
    staged = result["rois"][0]
    axis = "ijk".index(staged["slice_axis"])
    lo, hi = roi.ijk_extent(image)
    indices = [s["index"] for s in staged["slices"]]
    assert indices == sorted(indices) and lo[axis] <= indices[0] and indices[-1] <= hi[axis]
    assert sum(staged["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert result["model"]["sha256"] == read_card(tiny_model).card["sha256"]
    assert result["input"]["geometry"]["size_ijk"] == list(image.shape_ijk)
    assert read_rois(out / "rois.mrk.json")[0].name == "thrombus-1"
    assert (out / "report.png").stat().st_size > 10_000
    # nothing the user made is overwritten without asking
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", oblique_study / "roi.mrk.json",
                           "--model", tiny_model, "--out", out)
    assert_user_error(code, err, "--overwrite")


def test_a_study_with_many_rois_gives_a_short_log_and_a_readable_report(tiny_model, oblique_study, tmp_path, capsys):
    """More ROIs than get a status line each or a name in the picture: one summary line instead of one line (and
    warning) per ROI; the picture lists a few by name, result.json has them all."""
    from DVTStagingLib.staging.pipeline import STATUS_LINES_PER_ROI_UP_TO
    from DVTStagingLib.staging.report import REPORT_ROIS

    truth = read_rois(oblique_study / "roi.mrk.json")[0]
    rng = np.random.default_rng(1)
    many = max(STATUS_LINES_PER_ROI_UP_TO, REPORT_ROIS) + 5
    rois = [BoxROI(f"r{n}", truth.center_ras + rng.normal(0, 10, 3), truth.size_mm, truth.axes_ras)
            for n in range(many)]
    rois.append(BoxROI("half-out", truth.center_ras + [0, 0, 400.0], [20, 20, 900.0], truth.axes_ras))
    write_rois(tmp_path / "many.mrk.json", rois)
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", tmp_path / "many.mrk.json",
                           "--model", tiny_model, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("progress:")]
    assert len(lines) <= 3, lines
    assert any(ln.startswith(f"stage: {many + 1} ROIs:") for ln in lines)
    assert sum("extend beyond the volume" in ln for ln in lines) == 1
    result = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert len(result["rois"]) == many + 1 and (tmp_path / "out" / "report.png").stat().st_size > 10_000


def test_a_tampered_weights_file_is_refused(tiny_model, oblique_study, tmp_path, capsys):
    card = json.loads(tiny_model.read_text(encoding="utf-8"))
    shutil.copy(tiny_model, tmp_path / tiny_model.name)
    weights = tmp_path / card["weights"]
    data = bytearray((tiny_model.parent / card["weights"]).read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", oblique_study / "roi.mrk.json",
                           "--model", tmp_path / tiny_model.name, "--out", tmp_path / "out")
    assert_user_error(code, err, "sha256")
    assert not (tmp_path / "out" / "result.json").exists()


def test_unknown_model_id_is_a_user_error(oblique_study, tmp_path, capsys):
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", oblique_study / "roi.mrk.json",
                           "--model", "no-such-model", "--out", tmp_path / "out")
    assert_user_error(code, err, "no-such-model")


# -- evaluate and training --------------------------------------------------
def test_evaluate_writes_metrics_and_confusion(tiny_model, phantom_dataset, tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "--data", phantom_dataset.root, "--model", tiny_model,
                           "--split", "val", "--out", tmp_path / "ev")
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    staging = metrics["staging"]
    assert {"accuracy", "macro_f1", "per_class_auc", "confusion"} <= set(staging)
    assert np.array(staging["confusion"]).sum() == staging["n"] == len(staging["predictions"])
    assert (tmp_path / "ev" / "confusion.png").is_file()


def test_training_resumes_from_its_checkpoint(phantom_dataset, tmp_path):
    from DVTStagingLib.models.config import VDPF_TINY
    from DVTStagingLib.training.train import run_training

    run_training(phantom_dataset.root, VDPF_TINY, tmp_path, seed=1, epochs=1, model_id="a", publish=False)
    with pytest.raises(Exception, match="--resume"):
        run_training(phantom_dataset.root, VDPF_TINY, tmp_path, seed=1, epochs=2, model_id="b", publish=False)
    card = run_training(phantom_dataset.root, VDPF_TINY, tmp_path, seed=1, epochs=2, model_id="b",
                        publish=False, resume=True)
    log = [json.loads(line) for line in (tmp_path / "train.log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]          # epoch 1 was not run again
    assert card["training"]["epochs_run"] == 2


@pytest.mark.slow
def test_ddp_training_with_two_gloo_processes(phantom_dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", DVT_STAGING_MODELS=str(tmp_path / "catalogue"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "DVTStagingLib", "train", "--data", str(phantom_dataset.root), "--config", "vdpf-tiny",
           "--out", str(tmp_path / "run"), "--epochs", "2", "--model-id", "ddp-tiny", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log) == 2                                  # rank 0 alone writes the log
    assert (tmp_path / "catalogue" / "ddp-tiny.json").is_file()   # published to the catalogue
    assert proc.stderr.count("train: epoch 1/2") == 1


def test_comparison_trains_variants_on_one_split_and_prints_the_table(phantom_dataset, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--compare", "--data", phantom_dataset.root, "--config", "vdpf-tiny",
                             "--epochs", "1", "--variants", "F_L-S", "EfficientNet-b0", "--out", tmp_path / "cmp")
    assert code == 0, err
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text(encoding="utf-8"))["rows"]
    assert [r["method"] for r in rows] == ["F_L-S", "EfficientNet-b0"]
    assert all(0 <= r["test"]["macro_f1"] <= 1 for r in rows)
    assert "| Method | Val ACC (%) | Val F1 (%) | Test ACC (%) | Test F1 (%) |" in out
    code, _, err = run_cli(capsys, "evaluate", "--compare", "--data", phantom_dataset.root, "--variants", "VDPF-XL",
                           "--out", tmp_path / "cmp2")
    assert_user_error(code, err, "VDPF-XL")
