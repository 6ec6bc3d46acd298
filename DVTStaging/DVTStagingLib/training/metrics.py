"""Staging metrics of the paper's protocol: accuracy, macro F1, per-class AUC, confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(truth, int), np.asarray(predicted, int)), 1)
    return m


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)           # predicted + actual per class
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = cm.sum(axis=1) > 0                       # classes absent from the truth don't count
    return float(f1[present].mean()) if present.any() else 0.0


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank statistic (ties count half); None without both classes."""
    scores = np.asarray(scores, float)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):                            # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def staging_metrics(truth, probabilities, classes, indeterminate=None) -> dict:
    """Metrics of per-ROI predictions: truth [n] class indices, probabilities [n, classes].

    `indeterminate` [n] marks ROIs the model abstained on.  Each counts as a wrong answer: scored as the
    most probable class other than the true one (so an abstention on a wrong answer scores exactly as that
    answer, and one on a right answer as a wrong one), which means abstaining can never raise accuracy or
    macro F1.  AUC uses the probabilities of every ROI.
    """
    truth = np.asarray(truth, int)
    probabilities = np.asarray(probabilities, float)
    abstained = np.zeros(len(truth), bool) if indeterminate is None else np.asarray(indeterminate, bool)
    predicted = probabilities.argmax(axis=1)
    others = probabilities.copy()
    others[np.arange(len(truth)), truth] = -np.inf
    scored = np.where(abstained, others.argmax(axis=1), predicted) if len(truth) else predicted
    cm = confusion(truth, scored, len(classes))
    return {
        "n": len(truth),
        "accuracy": float((scored == truth).mean()) if len(truth) else 0.0,
        "macro_f1": macro_f1(cm),
        "indeterminate_rate": float(abstained.mean()) if len(truth) else 0.0,
        # what a radiologist must never get: a stage given, and wrong (a share of all ROIs)
        "confidently_wrong_rate": float((~abstained & (predicted != truth)).mean()) if len(truth) else 0.0,
        "per_class_auc": {c: binary_auc(probabilities[:, k], truth == k) for k, c in enumerate(classes)},
        "confusion": cm.tolist(),
        "confusion_axes": "rows: true stage, columns: predicted stage, in the order of 'classes'; an "
                          "'indeterminate' answer is counted as its most probable wrong stage",
        "indeterminate_per_class": np.bincount(truth[abstained], minlength=len(classes)).tolist(),
        "classes": list(classes),
    }
