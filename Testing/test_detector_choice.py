"""Issue 19: `--detector ID/CARD` on `stage`, `detect` (whose `--model` stays as an alias) and `serve`, and a
request naming a detector on the staging service.

A catalogued copy of the bundled detector under another id is the one recorded in result.json and
detections.json; an unknown id, or a card whose weights fail their sha256, is refused with exit 2 and one line
before any model library loads.  The runs use a small study (24 slices, a short ROI) to stay quick.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from catalogue_helpers import catalogue_copy
from DVTStagingLib.cli import build_parser, main
from DVTStagingLib.io.roi import BoxROI, write_rois
from DVTStagingLib.io.volume import Volume, write_volume
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.service import protocol as p
from service_helpers import Server, run_cli
from test_cli import run_cli_without_model_libraries, small_volume  # noqa: F401  (small_volume: a fixture)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalogue")
    catalogue_copy(folder, "detector", "site-det")
    catalogue_copy(folder, "detector", "site-det-b")
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A phantom study cropped to 24 slices around its thrombus, with a short ROI on it."""
    folder = tmp_path_factory.mktemp("small-study")
    phantom = make_study(31, ["chronic"])
    volume, roi = phantom.volume, phantom.rois[0]
    lo, hi = roi.ijk_extent(volume)
    k0 = (int(lo[2]) + int(hi[2])) // 2 - 12
    origin = (volume.ijk_to_lps @ np.array([0.0, 0.0, k0, 1.0]))[:3]
    small = Volume(np.ascontiguousarray(volume.array[k0:k0 + 24]), volume.spacing, origin, volume.direction_lps, {})
    short = BoxROI(roi.name, roi.center_ras, roi.size_mm * np.array([1.0, 1.0, 0.3]), roi.axes_ras)
    return {"image": write_volume(small, folder / "image.nrrd"), "roi": write_rois(folder / "roi.mrk.json", [short])}


def test_the_detector_option_is_defined_once_and_detect_keeps_model_as_its_old_name():
    parser = build_parser()
    assert parser.parse_args(["detect", "x.nrrd", "--model", "a"]).detector == "a"
    assert parser.parse_args(["detect", "x.nrrd", "--detector", "b"]).detector == "b"
    stage = parser.parse_args(["stage", "x.nrrd", "--auto-roi", "--model", "m", "--detector", "d"])
    assert (stage.model, stage.detector) == ("m", "d")
    assert parser.parse_args(["serve", "--detector", "d"]).detector == "d"
    assert parser.parse_args(["stage", "x.nrrd", "--auto-roi"]).detector is None


def test_an_unknown_or_tampered_detector_is_refused_before_the_model_libraries_load(tmp_path, small_volume):  # noqa: F811
    tampered = catalogue_copy(tmp_path / "copy", "detector", "tampered")
    with open(tmp_path / "copy" / "tampered.safetensors", "ab") as f:
        f.write(b"\0")
    cases = [(["stage", small_volume, "--auto-roi", "--detector", "no-such-detector"], "no-such-detector"),
             (["stage", small_volume, "--auto-roi", "--detector", "vdpf-small-phantom"], "not a detector model"),
             (["detect", small_volume, "--detector", "no-such-detector"], "no-such-detector"),
             (["detect", small_volume, "--model", "no-such-detector"], "no-such-detector"),
             (["stage", small_volume, "--auto-roi", "--detector", tampered], "sha256")]
    for args, fragment in cases:
        proc = run_cli_without_model_libraries(*args, "--out", tmp_path / "out")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("dvt-staging: error: ") and fragment in lines[0], (args, lines)
    proc = run_cli_without_model_libraries("serve", "--port", "0", "--detector", "no-such-detector")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no-such-detector" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_stage_and_detect_use_the_detector_they_are_given(study, catalogue, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DVT_STAGING_MODELS", str(catalogue))
    assert main(["stage", str(study["image"]), "--roi", str(study["roi"]), "--detector", "site-det", "--device",
                 "cpu", "--out", str(tmp_path / "stage")]) == 0
    result = json.loads((tmp_path / "stage" / "result.json").read_text())
    assert result["detector"]["id"] == "site-det" and len(result["detector"]["sha256"]) == 64
    assert main(["detect", str(study["image"]), "--model", "site-det-b", "--device", "cpu",
                 "--out", str(tmp_path / "detect")]) == 0                       # the old name of --detector
    assert json.loads((tmp_path / "detect" / "detections.json").read_text())["model"]["id"] == "site-det-b"
    capsys.readouterr()


@pytest.mark.slow
def test_the_server_has_a_default_detector_and_a_request_may_name_another(study, catalogue, tmp_path):
    env = {"DVT_STAGING_MODELS": str(catalogue)}
    server = Server(tmp_path / "server", "--detector", "site-det", env=env)
    try:
        models = httpx.get(server.url + p.MODELS, timeout=10).json()
        assert models["default_model"] == "vdpf-small-phantom" and models["default_detector"] == "site-det"
        by_id = {m["id"]: m for m in models["models"]}
        assert by_id["site-det"]["kind"] == "detector" and by_id["site-det"]["default"]
        assert by_id["site-det"]["loaded_on"] == ["cpu"]                        # loaded at start-up
        assert by_id["site-det-b"]["kind"] == "detector" and by_id["site-det-b"]["loaded_on"] == []
        assert not by_id["detector-phantom"]["default"]

        run = run_cli("stage", study["image"], "--roi", study["roi"], "--detector", "site-det-b", "--out",
                      tmp_path / "stage", "--server", server.url, env=env)
        assert run.returncode == 0, run.stderr
        assert json.loads((tmp_path / "stage" / "result.json").read_text())["detector"]["id"] == "site-det-b"
        run = run_cli("detect", study["image"], "--out", tmp_path / "detect", "--server", server.url, env=env)
        assert run.returncode == 0, run.stderr                                  # the server's default detector
        assert json.loads((tmp_path / "detect" / "detections.json").read_text())["model"]["id"] == "site-det"

        for args, fragment in ((["--detector", "no-such-detector"], "no detector 'no-such-detector' on this server"),
                               (["--detector", "site-det.json"], "catalogue id")):
            run = run_cli("stage", study["image"], "--roi", study["roi"], *args, "--out", tmp_path / "refused",
                          "--server", server.url, env=env)
            lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("progress:")]
            assert run.returncode == 2 and len(lines) == 1 and fragment in lines[0], run.stderr
        loaded = {m["id"]: m["loaded_on"] for m in httpx.get(server.url + p.MODELS, timeout=10).json()["models"]}
        assert loaded["site-det-b"] == ["cpu"]
    finally:
        server.stop()
