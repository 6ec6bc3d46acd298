"""Detection metrics: the paper's per-slice protocol and per-thrombus (3D) recall.

Per slice (papers/iliofemoral-dvt-detection-retinanet.txt): a detected box
is a true positive when its IoU with a true box of the same slice is >= 0.1;
sensitivity, false positives per image (slice), precision at score >= 0.1,
average precision (area under the precision-recall curve) and the FROC curve.
Per-slice detections are the regions of the probability map above 0.1, each
scored by its peak probability.

Per thrombus: the study's ROIs (objects above the model's ROI threshold, with
their margin) against the true ROIs, matched at 3D IoU >= 0.1 of the voxel
extents: recall, false ROIs per study and the mean IoU of matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.progress import Progress
from .detector import (
    CANDIDATE_FLOOR,
    DetectedObject,
    Detector,
    PostProcess,
    load_detector,
    objects_from_boxes,
    padded_extent,
    probability_maps,
    roi_of,
    select_rois,
    slice_boxes_in_view,
)
from .linking import SliceBox, box_iou
from .studies import PreparedStudy, load_case_study

IOU_THRESHOLD = 0.1
SCORE_THRESHOLD = 0.1


def iou_3d(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """IoU of two inclusive voxel extents."""
    lo = np.maximum(a[0], b[0])
    hi = np.minimum(a[1], b[1])
    inter = float(np.prod(np.clip(hi - lo + 1, 0, None)))
    vol_a = float(np.prod(a[1] - a[0] + 1))
    vol_b = float(np.prod(b[1] - b[0] + 1))
    return inter / (vol_a + vol_b - inter) if inter > 0 else 0.0


@dataclass
class StudyOutcome:
    """What one study contributes to the metrics."""

    case_id: str
    n_slices: int
    n_truth_boxes: int
    n_truth_rois: int
    box_scores: list[float] = field(default_factory=list)     # per detected 2D box
    box_hits: list[int] = field(default_factory=list)         # index of the true box it matches best, or -1
    box_first_hit: list[bool] = field(default_factory=list)   # greedy one-to-one matching for AP
    object_scores: list[float] = field(default_factory=list)  # per 3D object (candidate)
    object_hits: list[int] = field(default_factory=list)      # true ROI it matches (greedy by score), or -1
    object_ious: list[float] = field(default_factory=list)


def _match_boxes(boxes: list[SliceBox], truth: list[SliceBox]) -> tuple[list[int], list[bool]]:
    by_slice: dict[int, list[int]] = {}
    for n, t in enumerate(truth):
        by_slice.setdefault(t.slice, []).append(n)
    hits, first = [], []
    taken: set[int] = set()
    for box in boxes:        # boxes come sorted by score, strongest first
        best, best_iou, best_free, best_free_iou = -1, IOU_THRESHOLD, -1, IOU_THRESHOLD
        for n in by_slice.get(box.slice, []):
            iou = box_iou(box, truth[n])
            if iou >= best_iou:
                best, best_iou = n, iou
            if n not in taken and iou >= best_free_iou:
                best_free, best_free_iou = n, iou
        hits.append(best)
        first.append(best_free >= 0)
        if best_free >= 0:
            taken.add(best_free)
    return hits, first


def score_study(study: PreparedStudy, boxes: list[SliceBox], objects: list[DetectedObject],
                post: PostProcess) -> StudyOutcome:
    boxes = sorted(boxes, key=lambda b: -b.score)
    hits, first = _match_boxes(boxes, study.truth_boxes)
    outcome = StudyOutcome(study.case_id, study.view.n_slices, len(study.truth_boxes), len(study.truth_extents),
                           [b.score for b in boxes], hits, first)
    taken: set[int] = set()
    spacing, shape = study.view.spacing_ijk(), study.view.shape_ijk()
    for obj in objects:      # strongest first
        extent = padded_extent(obj, spacing, shape, post.roi_margin_mm)
        best, best_iou = -1, IOU_THRESHOLD
        for n, truth in enumerate(study.truth_extents):
            iou = iou_3d(extent, truth)
            if n not in taken and iou >= best_iou:
                best, best_iou = n, iou
        if best >= 0:
            taken.add(best)
        outcome.object_scores.append(obj.score)
        outcome.object_hits.append(best)
        outcome.object_ious.append(best_iou if best >= 0 else 0.0)
    return outcome


def analyse_study(detector: Detector, study: PreparedStudy, batch: int = 16, per_slice: bool = True) -> StudyOutcome:
    """Run the detector on a prepared study and score it against its truth (per slice too, unless told not to)."""
    probability = probability_maps(detector, study.view, None, batch)
    boxes = slice_boxes_in_view(study.view, probability, detector.post)
    objects = objects_from_boxes(study.view, boxes, detector.post)
    eval_boxes = []
    if per_slice:
        eval_boxes = slice_boxes_in_view(study.view, probability, detector.post, threshold=SCORE_THRESHOLD)
    return score_study(study, eval_boxes, objects, detector.post)


# ---------------------------------------------------------------------------
def average_precision(scores: np.ndarray, tp: np.ndarray, n_truth: int) -> float:
    """All-point interpolated area under the precision-recall curve."""
    if n_truth == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(float)
    cum_tp = np.cumsum(tp)
    recall = cum_tp / n_truth
    precision = cum_tp / np.arange(1, len(tp) + 1)
    # Precision envelope, then the area under the step curve.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_steps = np.concatenate([[0.0], recall])
    return float(np.sum((recall_steps[1:] - recall_steps[:-1]) * envelope))


def slice_metrics(outcomes: list[StudyOutcome], threshold: float = SCORE_THRESHOLD) -> dict:
    n_images = sum(o.n_slices for o in outcomes)
    n_truth = sum(o.n_truth_boxes for o in outcomes)
    tp_truth = fp = tp_boxes = n_boxes = 0
    for o in outcomes:
        found = set()
        for score, hit in zip(o.box_scores, o.box_hits):
            if score < threshold:
                continue
            n_boxes += 1
            if hit >= 0:
                tp_boxes += 1
                found.add(hit)
            else:
                fp += 1
        tp_truth += len(found)
    scores = np.array([s for o in outcomes for s in o.box_scores])
    first = np.array([f for o in outcomes for f in o.box_first_hit], dtype=bool)
    return {
        "sensitivity": tp_truth / n_truth if n_truth else None,
        "fppi": fp / n_images if n_images else None,
        "precision": tp_boxes / n_boxes if n_boxes else None,
        "ap": average_precision(scores, first, n_truth) if n_truth else None,
        "images": n_images, "true_boxes": n_truth, "detected_boxes": n_boxes,
        "iou_threshold": IOU_THRESHOLD, "score_threshold": threshold,
    }


def roi_metrics(outcomes: list[StudyOutcome], threshold: float) -> dict:
    n_truth = sum(o.n_truth_rois for o in outcomes)
    found, false, ious = 0, 0, []
    for o in outcomes:
        for score, hit, iou in zip(o.object_scores, o.object_hits, o.object_ious):
            if score < threshold:
                continue
            if hit >= 0:
                found += 1
                ious.append(iou)
            else:
                false += 1
    n = max(len(outcomes), 1)
    return {
        "recall_3d": found / n_truth if n_truth else None,
        "false_rois_per_study": false / n,
        "mean_iou_3d": float(np.mean(ious)) if ious else None,
        "studies": len(outcomes), "true_rois": n_truth, "found_rois": found, "false_rois": false,
        "iou_threshold": IOU_THRESHOLD, "roi_threshold": threshold,
    }


def froc_points(outcomes: list[StudyOutcome], level: str) -> list[tuple[float, float, float]]:
    """(threshold, false positives per slice or per study, sensitivity) at every score threshold that matters."""
    if level == "slice":
        scores = [o.box_scores for o in outcomes]
        hits = [o.box_hits for o in outcomes]
        n_truth = sum(o.n_truth_boxes for o in outcomes)
        per = sum(o.n_slices for o in outcomes)
    else:
        scores = [o.object_scores for o in outcomes]
        hits = [o.object_hits for o in outcomes]
        n_truth = sum(o.n_truth_rois for o in outcomes)
        per = len(outcomes)
    # A true object counts as found from the best score among the detections that hit it.
    found_at: dict[tuple[int, int], float] = {}
    false_scores = []
    for n, (ss, hh) in enumerate(zip(scores, hits)):
        for score, hit in zip(ss, hh):
            if hit >= 0:
                found_at[(n, hit)] = max(found_at.get((n, hit), 0.0), score)
            else:
                false_scores.append(score)
    found = np.sort(np.array(list(found_at.values()), dtype=float))
    false = np.sort(np.array(false_scores, dtype=float))
    floor = SCORE_THRESHOLD if level == "slice" else CANDIDATE_FLOOR
    thresholds = np.unique(np.concatenate([found, false, [floor]]))
    thresholds = thresholds[thresholds >= floor]
    out = []
    for t in thresholds[::-1]:
        n_found = len(found) - np.searchsorted(found, t, side="left")
        n_false = len(false) - np.searchsorted(false, t, side="left")
        out.append((float(t), n_false / max(per, 1), n_found / n_truth if n_truth else 0.0))
    return out[::-1]


def choose_roi_threshold(outcomes: list[StudyOutcome], max_false_per_study: float) -> float:
    """The ROI threshold: best 3D recall within the false-ROI budget, then fewest false ROIs.

    Many thresholds usually tie; the middle of the tied range leaves a margin
    on both sides, for studies a little unlike the validation ones.
    """
    points = [p for p in froc_points(outcomes, "roi") if p[1] <= max_false_per_study]
    if not points:
        return 0.99
    best = max((p[2], -p[1]) for p in points)
    tied = [p[0] for p in points if (p[2], -p[1]) == best]
    lo, hi = min(tied), max(tied)
    # Any threshold above the next lower score and up to `hi` keeps the same objects.
    below = [p[0] for p in froc_points(outcomes, "roi") if p[0] < lo]
    floor = max(below) if below else 0.0
    return float(round((floor + hi) / 2, 3))


def write_froc(outcomes: list[StudyOutcome], path: Path, roi_threshold: float, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    pts = froc_points(outcomes, "slice")
    axes[0].plot([p[1] for p in pts], [p[2] for p in pts], "-", color="tab:blue")
    m = slice_metrics(outcomes)
    if m["sensitivity"] is not None:
        axes[0].plot([m["fppi"]], [m["sensitivity"]], "o", color="tab:red", label="score >= 0.1")
        axes[0].legend(loc="lower right")
    axes[0].set(xlabel="false positives per slice", ylabel="sensitivity", title="per slice (IoU >= 0.1)",
                ylim=(0, 1.02))
    pts = froc_points(outcomes, "roi")
    axes[1].plot([p[1] for p in pts], [p[2] for p in pts], "-", color="tab:green")
    r = roi_metrics(outcomes, roi_threshold)
    if r["recall_3d"] is not None:
        axes[1].plot([r["false_rois_per_study"]], [r["recall_3d"]], "o", color="tab:red",
                     label=f"ROI threshold {roi_threshold:.2f}")
        axes[1].legend(loc="lower right")
    axes[1].set(xlabel="false ROIs per study", ylabel="thrombus recall", title="per thrombus (3D IoU >= 0.1)",
                ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(title or "Thrombus detection FROC")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def detection_metrics(outcomes: list[StudyOutcome], roi_threshold: float) -> dict:
    per_slice = slice_metrics(outcomes)
    per_roi = roi_metrics(outcomes, roi_threshold)
    out = {k: per_slice[k] for k in ("sensitivity", "fppi", "precision", "ap")}
    out.update({k: per_roi[k] for k in ("recall_3d", "false_rois_per_study", "mean_iou_3d")})
    out["per_slice"] = per_slice
    out["per_thrombus"] = per_roi
    return out


def evaluate_detection(dataset, cases, model=None, device="auto", out_dir=None, progress: bool = True) -> dict:
    """The `detection` section of metrics.json, and the ROIs found per case (to stage with them).

    `cases` are dataset cases or their ids.  Writes `froc.png` into out_dir when given.
    """
    detector = load_detector(model, device)
    by_id = {c.id: c for c in dataset.cases}
    chosen = [by_id[c] if isinstance(c, str) else c for c in cases]
    bar = Progress("evaluate-detection", len(chosen), enabled=progress)
    outcomes, rois, per_case = [], {}, []
    for case in chosen:
        study = load_case_study(dataset, case, detector.spec, keep_volume=True, with_target=False)
        probability = probability_maps(detector, study.view, None, 16)
        boxes = slice_boxes_in_view(study.view, probability, detector.post)
        objects = objects_from_boxes(study.view, boxes, detector.post)
        eval_boxes = slice_boxes_in_view(study.view, probability, detector.post, threshold=SCORE_THRESHOLD)
        outcome = score_study(study, eval_boxes, objects, detector.post)
        outcomes.append(outcome)
        kept, warning = select_rois(objects, detector.post)
        rois[case.id] = [roi_of(study.view, o, f"thrombus-{n}", detector.post.roi_margin_mm)
                         for n, o in enumerate(kept, start=1)]
        per_case.append({"case": case.id, "true_rois": outcome.n_truth_rois, "rois": len(kept),
                         "scores": [round(o.score, 3) for o in kept], "warning": warning})
        bar.update()
    metrics = detection_metrics(outcomes, detector.post.roi_threshold)
    metrics["model"] = {"id": detector.model_id, "sha256": detector.sha256}
    metrics["cases"] = per_case
    if out_dir is not None:
        metrics["froc_png"] = write_froc(outcomes, Path(out_dir) / "froc.png", detector.post.roi_threshold).name
    return {"metrics": metrics, "rois": rois}
