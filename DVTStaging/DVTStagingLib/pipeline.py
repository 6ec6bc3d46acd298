"""The user-level jobs behind `stage` and `demo`: inputs checked, work done, files written."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import InputFileError, UserError
from .progress import status
from .roi import BoxROI, read_rois, roi_names_unique, write_rois
from .volume import Volume, read_volume

STAGE_OUTPUTS = ("result.json", "attention.nrrd", "rois.mrk.json", "report.png")
# Also written by `stage` (the DICOM pair only for DICOM input); never replaced without --overwrite either.
OTHER_STAGE_OUTPUTS = ("attention-global-to-local.nrrd", "thrombus-seg.dcm", "stage-sr.dcm")


def check_image_content(volume: Volume, name: str) -> None:
    lo, hi = float(volume.array.min()), float(volume.array.max())
    if hi <= lo:
        raise InputFileError(f"{name} is constant (every voxel is {lo:g}); nothing to stage")


def load_rois_for(volume: Volume, roi_path: Path) -> list[BoxROI]:
    rois = roi_names_unique(read_rois(roi_path))
    for roi in rois:
        inside = roi.fraction_inside(volume)
        if inside <= 0:
            raise UserError(f"ROI '{roi.name}' in {roi_path} lies outside the volume")
        if inside < 0.999:
            status(f"warning: ROI '{roi.name}' extends beyond the volume; only its inside part is used")
    return rois


def prepare_output(out: Path, overwrite: bool, names=STAGE_OUTPUTS) -> Path:
    """Create the output folder; refuse to replace earlier results unless asked to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_stage_inputs(input_path: Path, roi_path: Path | None, auto_roi: bool) -> tuple[Volume, list[BoxROI] | None]:
    """Read and check the study and its ROIs (None: ROIs are to be detected)."""
    if roi_path is not None and auto_roi:
        raise UserError("give either --roi or --auto-roi, not both")
    if roi_path is None and not auto_roi:
        raise UserError("no thrombus ROI: give --roi FILE.mrk.json or --auto-roi")
    volume = read_volume(input_path)
    check_image_content(volume, str(input_path))
    rois = load_rois_for(volume, Path(roi_path)) if roi_path is not None else None
    return volume, rois


def detect_for_staging(volume: Volume, device: str):
    """ROIs from the bundled detector, with their scores."""
    try:
        from .detection import detect_rois
    except ImportError:
        raise UserError("automatic ROI detection is not installed in this version; give --roi") from None
    found = detect_rois(volume, device=device)
    if found.warning:
        status(f"detect: {found.warning}")
    return list(found.rois), {r.name: float(s) for r, s in zip(found.rois, found.scores)}


def stage_study(input_path, out, roi_path=None, auto_roi=False, model=None, device="auto", overwrite=False,
                cancel=None, rois: list[BoxROI] | None = None, volume: Volume | None = None) -> dict | None:
    """Stage every ROI of a study and write STAGE_OUTPUTS into `out`; returns result.json's content.

    `rois`/`volume` let a caller (demo, Slicer Logic) pass what it already holds.
    """
    from .attention import attention_volume
    from .inference import Stager
    from .results import build_result, write_report, write_result
    from .volume import write_volume

    timings = {}
    started = time.perf_counter()
    if volume is None:
        volume, rois = load_stage_inputs(Path(input_path), roi_path, auto_roi)
    timings["read_input"] = time.perf_counter() - started
    out = prepare_output(Path(out), overwrite, names=STAGE_OUTPUTS + OTHER_STAGE_OUTPUTS)
    t = time.perf_counter()
    stager = Stager(model, device)
    timings["load_model"] = time.perf_counter() - t
    scores = None
    if rois is None:
        t = time.perf_counter()
        rois, scores = detect_for_staging(volume, device)
        timings["detect"] = time.perf_counter() - t
        write_rois(out / "rois.mrk.json", rois)
        if not rois:
            status("stage: no thrombus found by auto-detection; nothing to stage (rois.mrk.json is empty)")
            return None
    t = time.perf_counter()
    study, results = stager.stage(volume, rois, cancel=cancel)
    timings["stage"] = time.perf_counter() - t
    t = time.perf_counter()
    overlays = {name: attention_volume(study, results, name) for name in ("local_to_global", "global_to_local")}
    write_volume(overlays["local_to_global"], out / "attention.nrrd")
    write_volume(overlays["global_to_local"], out / "attention-global-to-local.nrrd")
    write_rois(out / "rois.mrk.json", rois)
    timings["overlays"] = time.perf_counter() - t
    result = build_result(study, results, stager.classes, stager.entry, str(stager.device), str(input_path),
                          timings, scores)
    result["outputs"] = {"attention": "attention.nrrd", "attention_global_to_local": "attention-global-to-local.nrrd",
                         "rois": "rois.mrk.json", "report": "report.png"}
    t = time.perf_counter()
    write_report(out / "report.png", study, results, stager.classes, overlays["local_to_global"], result)
    result["timings"]["report"] = round(time.perf_counter() - t, 4)
    if volume.metadata.get("source_format") == "dicom":   # SEG + SR for PACS, listed before result.json is written
        from .dicom_outputs import write_dicom_outputs

        t = time.perf_counter()
        result["outputs"].update(write_dicom_outputs(volume, rois, result, out, auto_detected=scores is not None))
        result["timings"]["dicom"] = round(time.perf_counter() - t, 4)
    result["timings"]["total"] = round(time.perf_counter() - started, 4)
    write_result(result, out / "result.json")
    for r in result["rois"]:
        probs = ", ".join(f"{c} {p:.2f}" for c, p in r["probabilities"].items())
        status(f"stage: {r['name']}: {r['stage']} ({probs})")
    status(f"stage: wrote {', '.join(STAGE_OUTPUTS)} to {out}")
    return result


def write_demo_study(out: Path, seed: int, overwrite: bool):
    """A phantom study (one acute thrombus) with its true ROI and truth, under out/study."""
    from .phantom.study import make_study
    from .phantom.writer import write_study

    prepare_output(out, overwrite, names=("study",) + STAGE_OUTPUTS)
    study = make_study(seed, ["acute"])
    files = write_study(study, out / "study")
    return study, {k: (out / "study" / v if isinstance(v, str) else [out / "study" / f for f in v])
                   for k, v in files.items()}


def _detector_available() -> bool:
    try:
        from .catalog import list_models
        from .detection import detect_rois  # noqa: F401
    except ImportError:
        return False
    return bool(list_models("detector"))


def run_demo(out, seed=2024, model=None, device="auto", overwrite=False, true_roi=False):
    """Phantom study -> ROI (auto-detected when a detector is installed) -> staging -> overlays and report."""
    started = time.perf_counter()
    out = Path(out)
    study, files = write_demo_study(out, seed, overwrite)
    truth = study.truth["thrombi"][0]
    status(f"demo: phantom study {files['image']} (true stage {truth['stage']}, "
           f"thrombus/muscle ratio {truth['ratio']:.2f})")
    volume, _ = load_stage_inputs(files["image"], files["rois"][0], auto_roi=False)
    rois = None if (_detector_available() and not true_roi) else study.rois
    status("demo: ROIs by auto-detection" if rois is None else "demo: using the phantom's true ROI")
    result = stage_study(files["image"], out, model=model, device=device, overwrite=True, rois=rois, volume=volume)
    status(f"demo: finished in {time.perf_counter() - started:.1f} s; report {out / 'report.png'}")
    return result
