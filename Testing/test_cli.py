"""The command line: exit codes and one-line messages for bad input, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from DVTStagingLib.cli import main
from DVTStagingLib.roi import BoxROI, write_rois
from DVTStagingLib.volume import Volume, write_volume


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("dvt-staging: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def small_volume(tmp_path):
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(0, 1000, size=(6, 20, 24)).astype(np.int16), [1.0, 1.0, 2.0], [0, 0, 0], np.eye(3))
    return write_volume(volume, tmp_path / "study.nrrd")


def bad_inputs(tmp_path):
    png = tmp_path / "slice.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.uint8)), str(png))
    good = tmp_path / "good.nrrd"
    write_volume(Volume(np.ones((6, 8, 8), np.float32), [1, 1, 1], [0, 0, 0], np.eye(3)), good, compress=False)
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(good.read_bytes()[:-100])
    four_d = tmp_path / "fourd.nii.gz"
    frames = [sitk.GetImageFromArray(np.full((4, 5, 6), t, np.float32)) for t in range(3)]
    sitk.WriteImage(sitk.JoinSeries(frames), str(four_d))
    nan = tmp_path / "nan.nrrd"
    arr = np.ones((4, 5, 6), np.float32)
    arr[2, 2, 2] = np.nan
    write_volume(Volume(arr, [1, 1, 1], [0, 0, 0], np.eye(3)), nan)
    text = tmp_path / "notes.nrrd"
    text.write_text("these are my notes, not an image\n", encoding="utf-8")
    return {
        "2D PNG": (png, "2D image"),
        "truncated NRRD": (truncated, "truncated or corrupt"),
        "4D NIfTI": (four_d, "4D image"),
        "NaN voxels": (nan, "NaN"),
        "non-image file": (text, "not an image file"),
        "missing path": (tmp_path / "nowhere.nrrd", "no such file"),
        "empty folder": (tmp_path / "emptydir", "without a DICOM series"),
    }


def test_stage_rejects_bad_inputs_with_one_line(tmp_path, capsys):
    (tmp_path / "emptydir").mkdir()
    for label, (path, fragment) in bad_inputs(tmp_path).items():
        code, _, err = run_cli(capsys, "stage", path, "--auto-roi", "--out", tmp_path / "out")
        assert_user_error(code, err, fragment)
        assert not (tmp_path / "out" / "result.json").exists(), label


def test_stage_rejects_roi_outside_volume(tmp_path, capsys, small_volume):
    roi = write_rois(tmp_path / "far.mrk.json", [BoxROI("far", [900.0, 900.0, 900.0], [5, 5, 5])])
    code, _, err = run_cli(capsys, "stage", small_volume, "--roi", roi, "--out", tmp_path / "out")
    assert_user_error(code, err, "outside the volume")


def test_stage_rejects_bad_roi_file_and_missing_roi(tmp_path, capsys, small_volume):
    bad = tmp_path / "bad.mrk.json"
    bad.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli(capsys, "stage", small_volume, "--roi", bad)
    assert_user_error(code, err, "not a JSON file")
    code, _, err = run_cli(capsys, "stage", small_volume)
    assert_user_error(code, err, "--roi")


def test_usage_errors_are_one_line(capsys):
    code, _, err = run_cli(capsys, "stage")
    assert_user_error(code, err, "input")
    code, _, err = run_cli(capsys, "no-such-command")
    assert_user_error(code, err, "invalid choice")
    code, _, err = run_cli(capsys, "phantom", "--out", "x", "--cases", "many")
    assert_user_error(code, err, "invalid int value")


def test_phantom_then_validate(tmp_path, capsys):
    code, out, err = run_cli(capsys, "phantom", "--out", tmp_path / "p", "--cases", 2, "--seed", 3, "--workers", 1)
    assert code == 0, err
    code, out, err = run_cli(capsys, "dataset", "validate", tmp_path / "p")
    assert code == 0 and "valid dataset" in out
    code, out, err = run_cli(capsys, "phantom", "--out", tmp_path / "p", "--cases", 2)
    assert_user_error(code, err, "--overwrite")


def test_entry_point_runs_as_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "DVTStagingLib", "stage", str(tmp_path / "missing.nrrd"),
                           "--auto-roi"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr
