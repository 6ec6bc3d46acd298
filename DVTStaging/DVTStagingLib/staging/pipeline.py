"""The `stage` job: inputs checked (before any model library is imported), ROIs found or read, model run,
files written."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core.errors import UserError
from ..core.files import prepare_output
from ..core.progress import status
from ..io.fast_nrrd import write_float_nrrd
from ..io.roi import BoxROI, read_rois, roi_names_unique, write_rois
from ..io.volume import Volume, check_image_content, read_volume, write_volume
from ..models.catalog import resolve, verify_weights
from .outputs import (
    ATTENTION_FILES,
    DICOM_FILES,
    EVIDENCE_FILE,
    OVERLAY_FILES,
    PENDING,
    REPORT_FILE,
    RESULT_FILE,
    ROIS_FILE,
    STAGE_OUTPUTS,
)

STATUS_LINES_PER_ROI_UP_TO = 10   # past this many ROIs, one summary line instead of one line each
INPUT_IMAGE = "input.nrrd"          # a client's copy of the study and its ROIs (write_stage_inputs)
INPUT_ROIS = "input-rois.mrk.json"


def load_rois_for(volume: Volume, roi_path: Path) -> list[BoxROI]:
    rois = roi_names_unique(read_rois(roi_path))
    inside = {r.name: r.fraction_inside(volume) for r in rois}
    outside = [name for name, share in inside.items() if share <= 0]
    if outside:
        raise UserError(f"ROI '{outside[0]}' in {roi_path} lies outside the volume"
                        + (f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""))
    partial = [name for name, share in inside.items() if share < 0.999]
    if partial:
        status(f"warning: {len(partial)} ROI(s) extend beyond the volume ({', '.join(partial[:3])}"
               f"{', ...' if len(partial) > 3 else ''}); only their inside part is used")
    return rois


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


def write_stage_inputs(folder: Path, volume: Volume | Path, rois: list[BoxROI] | None) -> tuple[Path, Path | None]:
    """The study (exact geometry) and its ROIs as `stage` reads them (`load_stage_inputs`), written by a client
    (the Slicer panel's job); a study given as a file or DICOM folder path (a worklist study not loaded in the
    scene) is read by the CLI where it is."""
    folder = Path(folder)
    if isinstance(volume, (str, os.PathLike)):
        image = Path(volume)
    else:
        image = write_volume(volume, folder / INPUT_IMAGE, compress=False)   # speed over size: a temp file
    roi_path = write_rois(folder / INPUT_ROIS, rois) if rois else None
    return image, roi_path


def detect_for_staging(volume: Volume, device: str, detector=None):
    """ROIs from the bundled detector (or an already loaded `detector`), with their scores and the detector's
    thrombus pixels inside them (bool [k, j, i]: the ratio's thrombus signal)."""
    from ..detection.detector import detect_rois

    found = detect_rois(volume, model=detector, device=device)
    if found.warning:
        status(f"detect: {found.warning}")
    return (list(found.rois), {r.name: float(s) for r, s in zip(found.rois, found.scores)},
            found.thrombus_labelmap(1) > 0)


def _write_overlays(overlays: dict, out: Path) -> float:
    """Write every heat map of `outputs.OVERLAY_FILES`; the seconds it took."""
    started = time.perf_counter()
    for which, name in OVERLAY_FILES.items():
        if not write_float_nrrd(overlays[which], out / name):     # without `isal`: SimpleITK's zlib
            write_volume(overlays[which], out / name)
    return time.perf_counter() - started


def _report_stages(result: dict) -> None:
    rois = result["rois"]
    if len(rois) <= STATUS_LINES_PER_ROI_UP_TO:
        for r in rois:
            probs = ", ".join(f"{c} {p:.2f}" for c, p in r["probabilities"].items())
            status(f"stage: {r['name']}: {r['stage']} ({probs})")
        return
    counts = {}
    for r in rois:
        counts[r["stage"]] = counts.get(r["stage"], 0) + 1
    status(f"stage: {len(rois)} ROIs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" (per ROI: {RESULT_FILE})")


def stage_study(input_path, out, roi_path=None, auto_roi=False, model=None, device="auto", overwrite=False,
                cancel=None, rois: list[BoxROI] | None = None, volume: Volume | None = None,
                stager=None, detector=None, on_answer=None) -> dict | None:
    """Stage every ROI of a study and write the outputs of `outputs.STAGE_OUTPUTS` into `out`, in two steps.

    First the answer: result.json with the stages, probabilities, the per-ROI table and ratios, its overlays
    listed under `pending` (and rois.mrk.json), then the stage lines, then `on_answer(result)` (the staging
    service streams it).  Then the evidence maps, attention maps, report (and DICOM outputs), and result.json
    again, complete: the same file a one-step run would write.  Each write of result.json is atomic.

    Returns result.json's content (None when auto-detection finds no thrombus).  `rois`/`volume` let a
    caller (the demo) pass what it already holds; `stager` (an `inference.Stager`) and `detector` (a
    `detection.detector.Detector`) let one (the staging service) pass models it keeps loaded, checked
    when they were loaded; `detector` may also name one (a catalogue id or model card; None: the bundled one).
    """
    timings = {}
    started = time.perf_counter()
    if volume is None:
        volume, rois = load_stage_inputs(Path(input_path), roi_path, auto_roi)
    timings["read_input"] = time.perf_counter() - started
    entry = stager.entry if stager is not None else resolve(model, "staging")
    if stager is None:
        verify_weights(entry)
    if detector is None or isinstance(detector, (str, os.PathLike)):   # an id or card (None: the bundled one)
        verify_weights(resolve(detector, "detector"))   # finds ROIs, checks each ROI holds thrombus-like content
    out = prepare_output(Path(out), overwrite, names=STAGE_OUTPUTS)
    # The model libraries load only now: a wrong input or a tampered model is refused without paying for them.
    from ..detection.detector import load_detector
    from .inference import Stager
    from .results import build_result, write_result

    t = time.perf_counter()
    stager = stager if stager is not None else Stager(entry, device)
    detector = load_detector(detector, device)
    timings["load_model"] = time.perf_counter() - t
    scores = thrombus = None
    if rois is None:
        t = time.perf_counter()
        rois, scores, thrombus = detect_for_staging(volume, device, detector)
        timings["detect"] = time.perf_counter() - t
        write_rois(out / ROIS_FILE, rois)
        if not rois:
            status(f"stage: no thrombus found by auto-detection; nothing to stage ({ROIS_FILE} is empty)")
            return None
    t = time.perf_counter()
    study, results = stager.answer(volume, rois, cancel=cancel, detector=detector, keep_graph=stager.explains)
    timings["stage"] = time.perf_counter() - t
    write_rois(out / ROIS_FILE, rois)
    result = build_result(study, results, stager.classes, stager.entry, str(stager.device), str(input_path),
                          timings, scores, trust=stager.trust, thrombus=thrombus)
    result["detector"] = {"id": detector.model_id, "sha256": detector.sha256}
    dicom = volume.metadata.get("source_format") == "dicom"
    answer = answer_first(result, dicom)
    write_result(answer, out / RESULT_FILE)
    if on_answer is not None:
        on_answer(answer)
    _report_stages(result)
    _write_overlays_and_report(out, study, results, stager, volume, rois, result, scores, started, cancel)
    write_result(result, out / RESULT_FILE)
    status(f"stage: wrote {RESULT_FILE}, {', '.join(OVERLAY_FILES.values())}, {ROIS_FILE}, {REPORT_FILE} to {out}")
    return result


def answer_first(result: dict, dicom: bool) -> dict:
    """result.json as it is written once the stage is known: what is not written yet listed under `pending`."""
    pending = [*OVERLAY_FILES.values(), REPORT_FILE, *(DICOM_FILES if dicom else ())]
    return {**result, "timings": dict(result["timings"]), "outputs": {"rois": ROIS_FILE}, PENDING: pending}


def _write_overlays_and_report(out: Path, study, results, stager, volume, rois, result: dict, scores,
                               started: float, cancel) -> None:
    """The second step: evidence maps, overlay volumes, report (and DICOM outputs); completes `result`."""
    from .attention import attention_volume
    from .evidence import evidence_volume
    from .report import write_report

    t = time.perf_counter()
    stager.explain(study, results, cancel)
    overlays = {which: attention_volume(study, results, which) for which in ATTENTION_FILES}
    overlays["evidence"] = evidence_volume(study, results)
    overlay_s = time.perf_counter() - t
    result["outputs"] = {"evidence": EVIDENCE_FILE, "attention": ATTENTION_FILES["local-to-global"],
                         "attention_global_to_local": ATTENTION_FILES["global-to-local"],
                         "rois": ROIS_FILE, "report": REPORT_FILE}
    # The NRRDs are compressed in a second thread (SimpleITK releases the GIL) while the report is drawn in
    # this one: the report is single-threaded Python, so the compression uses the other core.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvt-staging-overlays") as writer:
        written = writer.submit(_write_overlays, overlays, out)
        t = time.perf_counter()
        write_report(out / REPORT_FILE, study, results, stager.classes, overlays, result)
        result["timings"]["overlays"] = round(overlay_s + written.result(), 4)
        result["timings"]["report"] = round(time.perf_counter() - t, 4)
    if volume.metadata.get("source_format") == "dicom":   # SEG + SR for PACS, listed before result.json is written
        from ..io.dicom_outputs import write_dicom_outputs

        t = time.perf_counter()
        result["outputs"].update(write_dicom_outputs(volume, rois, result, out, auto_detected=scores is not None))
        result["timings"]["dicom"] = round(time.perf_counter() - t, 4)
    result["timings"]["total"] = round(time.perf_counter() - started, 4)
