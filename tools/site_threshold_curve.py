"""Macro F1, indeterminate and confidently wrong of evaluated runs at other site-check thresholds, from the
site score each ROI of an `evaluate` metrics.json carries.

    PYTHONPATH=DVTStaging python tools/site_threshold_curve.py --run "analytic s9300=docs/results/metrics-bundled-heldout-s9300.json" \
        --run "fields s9900=docs/results/metrics-bundled-fields-s9900.json" --thresholds 1.2387 1.3 1.32 1.3587

The trust's decision (staging/trust.py) is replayed on each ROI: an answered ROI whose site score is over the
threshold is refused (exact: the checks before the site check passed); an ROI the run's site check refused is
answered at a higher threshold when its top probability clears the card's confidence threshold (the detector's
content check, which the run skipped for it, is not replayed: at most a few ROIs may differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))
from DVTStagingLib.core.stages import INDETERMINATE  # noqa: E402
from DVTStagingLib.training.metrics import macro_f1  # noqa: E402

SITE_REASON = "site check"


def replayed_stage(prediction: dict, threshold: float, confidence_threshold: float) -> str:
    stage, reason = prediction["stage"], prediction.get("reason") or ""
    site = prediction.get("site_score")
    if SITE_REASON in reason and site is not None and site <= threshold:
        probs = prediction["probabilities"]
        top = max(probs, key=probs.get)
        return top if probs[top] >= confidence_threshold else INDETERMINATE
    if stage != INDETERMINATE and site is not None and site > threshold:
        return INDETERMINATE
    return stage


def figures(predictions: list[dict], classes: list[str], threshold: float, confidence_threshold: float):
    """(macro F1 with an abstention counted as its most probable wrong stage, indeterminate, confidently wrong)."""
    cm = np.zeros((len(classes), len(classes)), int)
    abstained = wrong = 0
    for p in predictions:
        stage = replayed_stage(p, threshold, confidence_threshold)
        if stage == INDETERMINATE:
            abstained += 1
            others = {c: v for c, v in p["probabilities"].items() if c != p["truth"]}
            stage = max(others, key=others.get)
        elif stage != p["truth"]:
            wrong += 1
        cm[classes.index(p["truth"]), classes.index(stage)] += 1
    n = max(len(predictions), 1)
    return macro_f1(cm), abstained / n, wrong / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=metrics.json of an evaluate run")
    ap.add_argument("--thresholds", type=float, nargs="+", required=True)
    ap.add_argument("--card", default="DVTStaging/Resources/Models/vdpf-small-phantom.json",
                    help="the model card whose confidence threshold the runs used")
    args = ap.parse_args(argv)
    card = json.loads(Path(args.card).read_text(encoding="utf-8"))
    classes, confidence = card["classes"], card["trust"]["confidence_threshold"]
    runs = []
    for spec in args.run:
        name, path = spec.split("=", 1)
        runs.append((name, json.loads(Path(path).read_text(encoding="utf-8"))["staging"]["predictions"]))
    print("| site threshold | " + " | ".join(name for name, _ in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for t in args.thresholds:
        cells = ["{:.3f} / {:.1%} / {:.1%}".format(*figures(preds, classes, t, confidence)) for _, preds in runs]
        print(f"| {t} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
