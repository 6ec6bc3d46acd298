"""result.json (schema dvt-staging/result@1): built from the model's ROI results, checked against its schema, written."""

from __future__ import annotations

import functools
from pathlib import Path

import jsonschema
import numpy as np

from ..core.files import write_json_atomic
from ..core.stages import INDETERMINATE
from ..imaging.signal_ratio import estimated_ratio_in_box, segment_in_box
from ..io.dataset import load_json_schema
from ..models.catalog import NOT_FOR_CLINICAL_USE
from .outputs import RESULT_SCHEMA
from .slices import StudyView
from .trust import study_decision

STUDY_RULE = ("study probabilities are the mean of the probabilities of the ROIs that could be staged; each ROI's "
              "are the mean of its slices' calibrated probabilities")


def _probs(classes, values) -> dict:
    return {c: float(v) for c, v in zip(classes, values)}


MUSCLE = "muscle, the darkest major tissue peak 5-30 mm around the ROI"
BOX_RATIO = (f"estimated: upper quartile of the ROI's central half (median over slices) / {MUSCLE} (the detector "
             "found too few thrombus pixels in the ROI)")
SEGMENT_RATIO = f"estimated: upper quartile of the detector's thrombus pixels inside the ROI / {MUSCLE}"
CHECK_RATIO = f"estimated: upper quartile of the thrombus pixels the content check found inside the ROI / {MUSCLE}"


def roi_ratio(study: StudyView, r, thrombus: np.ndarray | None = None) -> tuple[float | None, str]:
    """An ROI result's thrombus/muscle ratio and how it was estimated: from `thrombus` (a view-ordered segment of
    the study, e.g. the detector's pixels) where it has pixels in the box, else from the content check's
    thrombus pixels, else from the box alone."""
    box = study.box(r.roi)
    image = study.orientation.apply(study.volume.array)
    spacing = study.orientation.spacing[1:]
    if segment_in_box(box, thrombus):
        return estimated_ratio_in_box(image, box, spacing, thrombus), SEGMENT_RATIO
    if r.thrombus_signal is not None:
        return estimated_ratio_in_box(image, box, spacing, signal=r.thrombus_signal), CHECK_RATIO
    return estimated_ratio_in_box(image, box, spacing), BOX_RATIO


def build_result(study: StudyView, results, classes, model_entry, device: str, input_path: str,
                 timings: dict, detection_scores: dict | None = None, trust=None,
                 thrombus: np.ndarray | None = None) -> dict:
    """result.json's content; `thrombus` (bool [k, j, i] on the input grid, e.g. the detector's thrombus pixels)
    gives the ROIs' thrombus/muscle ratio where it has pixels inside a box."""
    rois = []
    in_view = None if thrombus is None else study.orientation.apply(thrombus)
    for r in results:
        ratio, ratio_method = roi_ratio(study, r, in_view)
        rois.append({
            "name": r.roi.name,
            "stage": r.stage(classes),
            "reason": r.reason,
            "ood_score": None if r.ood_score is None else round(float(r.ood_score), 3),
            "site_score": None if r.site_score is None else round(float(r.site_score), 4),
            "thrombus_probability": None if r.thrombus_probability is None else round(float(r.thrombus_probability), 4),
            "probabilities": _probs(classes, r.probabilities),
            "slice_axis": r.pairs.axis,
            "slices": [{"index": int(i), "probabilities": _probs(classes, p)}
                       for i, p in sorted(zip(r.pairs.volume_slices, r.slice_probabilities), key=lambda x: x[0])],
            "thrombus_muscle_ratio": None if ratio is None else round(ratio, 3),
            "thrombus_muscle_ratio_method": ratio_method,
            "box": r.roi.to_dict(),
            "detection_score": None if detection_scores is None else detection_scores.get(r.roi.name),
        })
    card = model_entry.card
    if trust is None:
        study_probs, study_reason = np.mean([r.probabilities for r in results], axis=0), None
    else:
        study_probs, study_reason = study_decision([r.probabilities for r in results], [r.reason for r in results],
                                                   trust)
    return {
        "schema": RESULT_SCHEMA,
        "stage": INDETERMINATE if study_reason else classes[int(np.argmax(study_probs))],
        "reason": study_reason,
        "probabilities": _probs(classes, study_probs),
        "classes": list(classes),
        "study_rule": STUDY_RULE,
        "rois": rois,
        "model": {"id": card["id"], "version": str(card.get("version", "")), "sha256": card["sha256"],
                  "config": card["config"].get("name", "")},
        "device": device,
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "input": {"path": str(input_path), "geometry": study.volume.geometry_dict()},
        "intended_use": NOT_FOR_CLINICAL_USE,
        **({"trust": trust.card_section()} if trust is not None else {}),
    }


@functools.lru_cache(maxsize=1)
def _validator():       # built once: result.json is checked twice per run (the answer, the complete file)
    return jsonschema.Draft202012Validator(load_json_schema("result.schema.json"))


def validate_result(result: dict) -> list[str]:
    validator = _validator()
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(result)]


def write_result(result: dict, path: Path) -> Path:
    problems = validate_result(result)
    if problems:   # our own output failing its schema is a bug, not a user error
        raise RuntimeError(f"result.json would not match its schema: {problems[0]}")
    return write_json_atomic(path, result)
