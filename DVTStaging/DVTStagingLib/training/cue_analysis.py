"""Which cue the model relies on, and which ROIs it gets wrong: predictions against the phantom's truth.

A phantom case's truth.json records every drawn cue of each thrombus (signal ratio, vein calibre, edema,
channels, wall thickening, collaterals, size).  Two views of a model's answers:
- reliance: within each true stage, the rank correlation of the model's "acuteness" (P(acute) - P(chronic))
  with each cue.  A model that reads the thrombus signal correlates with the ratio even inside one stage;
- confusion per cue: accuracy, abstentions and confidently wrong answers by cue bin, and the list of the
  confidently wrong ROIs with their cues.
"""

from __future__ import annotations

import numpy as np

from ..core.json_files import read_json
from ..core.stages import INDETERMINATE

# cue -> (how to read it from a truth thrombus record, bins for the confusion table)
CUES = {
    "ratio": (lambda t: t.get("stored_ratio", t["ratio"]), [0, 1.3, 1.8, 2.5, 99]),
    "vein_scale": (lambda t: t["vein_scale"], [0, 0.9, 1.1, 1.3, 99]),
    "edema_mm": (lambda t: t["edema_mm"], [-1, 0.01, 3, 99]),
    "channels": (lambda t: t["channels"], [-1, 0.5, 2.5, 99]),
    "wall_thickening_mm": (lambda t: t["wall_thickening_mm"], [-1, 0.5, 99]),
    "collaterals": (lambda t: t["collaterals"], [-1, 0.5, 99]),
    "small": (lambda t: float(t["small"]), [-1, 0.5, 2]),
}


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def truth_cues(dataset) -> dict:
    """(case id, roi name) -> the truth record of that thrombus, for the cases that carry a truth file."""
    out = {}
    for case in dataset.cases:
        rel = case.extra.get("truth")
        if not rel or not dataset.path(rel).is_file():
            continue
        for t in read_json(dataset.path(rel), name="phantom truth").get("thrombi", []):
            out[(case.id, t["roi"])] = t
    return out


def cue_analysis(dataset, predictions: list[dict], classes: list[str]) -> dict | None:
    """Reliance and per-cue confusion of `predictions` (evaluate's per-ROI records); None without truth."""
    truth = truth_cues(dataset)
    rows = [(p, truth[(p["case"], p["roi"])]) for p in predictions if (p["case"], p["roi"]) in truth]
    if not rows:
        return None
    acute, chronic = classes.index("acute"), classes.index("chronic")
    acuteness = np.array([p["probabilities"][classes[acute]] - p["probabilities"][classes[chronic]] for p, _ in rows])
    stages = np.array([p["truth"] for p, _ in rows])
    answered = np.array([p["stage"] != INDETERMINATE for p, _ in rows])
    right = np.array([p["stage"] == p["truth"] for p, _ in rows])
    reliance, per_cue = {}, {}
    for cue, (read, bins) in CUES.items():
        values = np.array([float(read(t)) for _, t in rows])
        within = {s: _spearman(values[stages == s], acuteness[stages == s]) for s in classes}
        weights = [np.sum(stages == s) for s in classes if within[s] is not None]
        pooled = [within[s] for s in classes if within[s] is not None]
        reliance[cue] = {"within_stage": within,
                         "pooled": float(np.average(pooled, weights=weights)) if pooled else None}
        table = []
        for stage in classes:
            for lo, hi in zip(bins[:-1], bins[1:]):
                sel = (stages == stage) & (values > lo) & (values <= hi)
                if sel.any():
                    table.append({"stage": stage, "bin": [lo, hi], "n": int(sel.sum()),
                                  "accuracy": float(right[sel].mean()),
                                  INDETERMINATE: float((~answered[sel]).mean()),
                                  "confidently_wrong": float((answered[sel] & ~right[sel]).mean())})
        per_cue[cue] = table
    wrong = [{"case": p["case"], "roi": p["roi"], "truth": p["truth"], "answer": p["stage"],
              "probabilities": p["probabilities"], **{c: read(t) for c, (read, _) in CUES.items()}}
             for p, t in rows if p["stage"] not in (p["truth"], INDETERMINATE)]
    return {"n": len(rows), "acuteness": "P(acute) - P(chronic)", "reliance": reliance,
            "confusion_per_cue": per_cue, "confidently_wrong": wrong}
