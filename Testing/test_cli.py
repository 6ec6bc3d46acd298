"""The command line: exit codes and one-line messages for bad input, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from DVTStagingLib.cli import main
from DVTStagingLib.io.roi import BoxROI, write_rois
from DVTStagingLib.io.volume import Volume, write_volume


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
    # a header in metres (0.8 mm written as 0.0008), and one whose voxels would be kilometres: the detector's
    # resampling to its own grid asked for 1e17 bytes before this was refused
    metres, huge = tmp_path / "metres.nii.gz", tmp_path / "huge.nrrd"
    noise = np.random.default_rng(1).integers(0, 900, size=(6, 8, 8)).astype(np.int16)
    write_volume(Volume(noise, [0.0008, 0.0008, 0.004], [0, 0, 0], np.eye(3)), metres)
    write_volume(Volume(noise, [1e6, 1e6, 1e6], [0, 0, 0], np.eye(3)), huge)
    # a CD's folder above its series (DICOM files need a DICOM marker only, for this message)
    series = tmp_path / "cd" / "DICOM" / "PA0" / "SE0"
    series.mkdir(parents=True)
    (series / "IM0").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    return {
        "2D PNG": (png, "2D image"),
        "truncated NRRD": (truncated, "truncated or corrupt"),
        "4D NIfTI": (four_d, "4D image"),
        "NaN voxels": (nan, "NaN"),
        "non-image file": (text, "not an image file"),
        "missing path": (tmp_path / "nowhere.nrrd", "no such file"),
        "empty folder": (tmp_path / "emptydir", "without a DICOM series"),
        "spacing in metres": (metres, "check the units in its header"),
        "kilometre voxels": (huge, "outside the 0.01-100 mm of an MR study"),
        "the folder above a series": (tmp_path / "cd", "its subfolders do: DICOM/PA0/SE0 (1 file); give the folder"),
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


# The CLI in a child process with the model libraries made unimportable: every bad input must be refused
# before they load (so it answers at once), and the child's own stderr shows what ITK or GDCM print too.
_NO_TORCH = """
import sys
class NoModelLibraries:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm", "safetensors", "matplotlib"):
            raise ImportError(f"{name} was imported before the input was checked")
sys.meta_path.insert(0, NoModelLibraries())
from DVTStagingLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli_without_model_libraries(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _NO_TORCH, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_bad_input_is_refused_before_the_model_libraries_load(tmp_path, small_volume):
    (tmp_path / "emptydir").mkdir()
    outside = write_rois(tmp_path / "far.mrk.json", [BoxROI("far", [900.0, 900.0, 900.0], [5, 5, 5])])
    cases = [(["stage", path, "--auto-roi"], fragment) for path, fragment in bad_inputs(tmp_path).values()]
    cases += [(["detect", tmp_path / "emptydir"], "without a DICOM series"),
              (["stage", small_volume, "--roi", outside], "outside the volume"),
              (["stage", small_volume, "--auto-roi", "--model", "no-such-model"], "no-such-model")]
    for args, fragment in cases:
        proc = run_cli_without_model_libraries(*args, "--out", tmp_path / "out")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, (args, proc.stderr)   # nothing from ITK/GDCM either
        assert lines[0].startswith("dvt-staging: error: ") and fragment in lines[0], (args, lines)
    assert not (tmp_path / "out").exists()      # nothing was created for a refused run


def test_a_tampered_model_is_refused_before_the_model_libraries_load(tmp_path, small_volume):
    from DVTStagingLib.models.catalog import bundled_dir

    for name in ("vdpf-small-phantom.json", "vdpf-small-phantom.safetensors"):
        shutil.copy(bundled_dir() / name, tmp_path / name)
    with open(tmp_path / "vdpf-small-phantom.safetensors", "ab") as f:
        f.write(b"\0")
    roi = write_rois(tmp_path / "r.mrk.json", [BoxROI("t", [-10.0, -10.0, 5.0], [8, 8, 6])])
    proc = run_cli_without_model_libraries("stage", small_volume, "--roi", roi, "--model",
                                           tmp_path / "vdpf-small-phantom.json", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "sha256" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
