"""A stand-in for `dvt-staging stage` that honours its output contract without a model.

Tests of the Slicer Logic use it to check the round trip (inputs written,
background run, progress, cancel, outputs loaded as nodes) independently of
the staging model.  The outputs are written with the core writers:
`result.json` (schema result@1, with the `--detector` it was given),
`evidence.nrrd`, `attention.nrrd` and `attention-global-to-local.nrrd` (0-1,
in the input geometry, peaked at each ROI's centre) and `rois.mrk.json`.
`detect` writes one ROI in the middle of the volume, detections.json and, with
`--segmentation`, thrombus.seg.nrrd (an ellipsoid inside that ROI).
`FAKE_STAGE_SECONDS` makes it slow (for cancel and scene-close tests);
`FAKE_STAGE_RESULTS` (a JSON file {name of the image's folder: {"stage",
"probabilities"}}) sets a study's answer (the worklist's uncertainty ordering).
As `stage` does, the CLI writes the answer first (result.json with its overlays
under `pending`, atomically), then the overlays and result.json again; with
`FAKE_OVERLAYS_GATE` set it waits for that file to exist between the two (so a
test sees the answer alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

FAKE_MODEL = {"id": "fake-model", "version": "0", "sha256": "0" * 64}


def _blob(volume, roi, width_fraction: float) -> np.ndarray:
    """exp(-r²/2σ²) around the ROI centre, σ a fraction of the ROI size, on the volume grid."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.array.shape), indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    ras = volume.ijk_to_ras_points(ijk)
    local = (ras - roi.center_ras) @ roi.axes_ras      # ROI axes: the blob follows an oblique box
    sigma = np.maximum(roi.size_mm * width_fraction, 1.0)
    r2 = ((local / sigma) ** 2).sum(axis=1)
    return np.exp(-0.5 * r2).reshape(volume.array.shape).astype(np.float32)


def _roi_results(volume, rois, stages=None) -> list[dict]:
    classes = ("acute", "subacute", "chronic")
    roi_results = []
    for n, roi in enumerate(rois):
        stage = (stages or classes)[n % len(stages or classes)]
        probs = {c: (0.7 if c == stage else 0.15) for c in classes}
        lo, hi = roi.ijk_extent(volume)
        slices = [{"index": int(k), "probabilities": {c: round(p + 0.01 * ((k - lo[2]) % 3 - 1) * (c == stage), 4)
                                                      for c, p in probs.items()}}
                  for k in range(int(lo[2]), int(hi[2]) + 1)]
        roi_results.append({"name": roi.name, "stage": stage, "probabilities": probs, "slice_axis": "k",
                            "slices": slices, "thrombus_muscle_ratio": None if n % 2 else 2.5 + n})
    return roi_results


def _result(volume, roi_results, detector=None, study=None) -> dict:
    worst = roi_results[0] if roi_results else None
    uniform = {c: 1 / 3 for c in ("acute", "subacute", "chronic")}
    result = {"schema": "dvt-staging/result@1", "stage": worst["stage"] if worst else "acute",
              "probabilities": worst["probabilities"] if worst else uniform,
              "rois": roi_results, "model": FAKE_MODEL, "device": "cpu", "timings": {"total_s": 0.0},
              "input": volume.geometry_dict(), "detector": {"id": detector or "detector-phantom", "sha256": None}}
    result.update(study or {})
    return result


def _write_json(path: Path, data: dict) -> None:
    """Atomically, as the CLI writes result.json: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def write_fake_answer(out, volume, rois, stages=None, detector=None, study=None) -> dict:
    """rois.mrk.json and result.json as `stage` writes them once the stage is known: the overlays `pending`."""
    from DVTStagingLib.io.roi import write_rois

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_rois(out / "rois.mrk.json", rois)
    result = {**_result(volume, _roi_results(volume, rois, stages), detector, study),
              "outputs": {"rois": "rois.mrk.json"},
              "pending": ["evidence.nrrd", "attention.nrrd", "attention-global-to-local.nrrd"]}
    _write_json(out / "result.json", result)
    return result


def write_fake_stage_output(out, volume, rois, stages=None, detector=None, study=None) -> dict:
    """Everything `stage` writes (but report.png), for `volume` and its `rois`."""
    from DVTStagingLib.io.roi import write_rois
    from DVTStagingLib.io.volume import write_volume

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    evidence = np.zeros(volume.array.shape, np.float32)
    local_to_global = np.zeros(volume.array.shape, np.float32)
    global_to_local = np.zeros(volume.array.shape, np.float32)
    for roi in rois:
        evidence = np.maximum(evidence, _blob(volume, roi, 0.15))
        local_to_global = np.maximum(local_to_global, _blob(volume, roi, 0.25))
        global_to_local = np.maximum(global_to_local, 0.8 * _blob(volume, roi, 0.6))
    write_volume(volume.with_array(evidence), out / "evidence.nrrd")
    write_volume(volume.with_array(local_to_global), out / "attention.nrrd")
    write_volume(volume.with_array(global_to_local), out / "attention-global-to-local.nrrd")
    write_rois(out / "rois.mrk.json", rois)
    result = _result(volume, _roi_results(volume, rois, stages), detector, study)
    _write_json(out / "result.json", result)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fake-dvt-staging")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stage")
    s.add_argument("input", type=Path)
    s.add_argument("--roi", type=Path)
    s.add_argument("--auto-roi", action="store_true")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--model")
    s.add_argument("--detector")
    s.add_argument("--device", default="auto")
    d = sub.add_parser("detect")
    d.add_argument("input", type=Path)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--detector")
    d.add_argument("--device", default="auto")
    d.add_argument("--segmentation", action="store_true")
    args = p.parse_args(argv)

    from DVTStagingLib.io.roi import read_rois
    from DVTStagingLib.io.volume import read_volume

    if args.command == "detect":
        return fake_detect(args)

    seconds = float(os.environ.get("FAKE_STAGE_SECONDS", "0"))
    steps = 20
    for step in range(1, steps + 1):
        print(f"progress: staging {step}/{steps}", file=sys.stderr, flush=True)
        time.sleep(seconds / steps)
    volume = read_volume(args.input)
    if args.roi is None:
        print("fake-dvt-staging: error: the fake CLI cannot detect ROIs", file=sys.stderr)
        return 2
    answers = os.environ.get("FAKE_STAGE_RESULTS")
    study = json.loads(Path(answers).read_text()).get(args.input.parent.name) if answers else None
    rois = read_rois(args.roi)
    write_fake_answer(args.out, volume, rois, detector=args.detector, study=study)
    gate = os.environ.get("FAKE_OVERLAYS_GATE")
    deadline = time.monotonic() + 60
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    write_fake_stage_output(args.out, volume, rois, detector=args.detector, study=study)
    return 0


def fake_detect(args) -> int:
    """One ROI in the middle of the volume (and an ellipsoid of thrombus in it)."""
    from DVTStagingLib.io.roi import BoxROI, write_rois
    from DVTStagingLib.io.segmentation import THROMBUS, THROMBUS_SEGMENT, write_segmentation
    from DVTStagingLib.io.volume import read_volume

    volume = read_volume(args.input)
    shape = np.array(volume.array.shape[::-1])          # i, j, k
    center = volume.ijk_to_ras_points((shape - 1)[None, :] / 2.0)[0]
    roi = BoxROI("thrombus-1", center, np.array([16.0, 16.0, 24.0]), np.eye(3))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_rois(out / "rois.mrk.json", [roi])
    doc = {"model": {"id": args.detector or "detector-phantom", "sha256": None}, "found": 1}
    (out / "detections.json").write_text(json.dumps(doc), encoding="utf-8")
    if args.segmentation:
        blob = _blob(volume, roi, 0.25) > 0.6
        write_segmentation(out / "thrombus.seg.nrrd", blob.astype(np.uint8) * THROMBUS, volume, THROMBUS_SEGMENT)
    print(f"detect: 1 thrombus ROI(s) in {args.input}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
