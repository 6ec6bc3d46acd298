"""Re-fit a staging model's confidence threshold (training.calibration's rule) on the studies it was trained on.

For a model trained by tools/train_in_memory.py on `dvt-staging phantom --cases N --seed S`: the validation
and test studies are rendered again in memory (tools/phantom_in_memory.py), the threshold is fit on the
validation ROIs, and the card's `trust.confidence_threshold`, `trust.fit` and `metrics.val`/`metrics.test`
are rewritten with it (every case, indeterminate counted wrong).  Temperature, OOD fit and weights stay.
`dvt-staging calibrate` does the same and more (temperature, OOD fit) from studies on disk.

  python3 tools/refit_confidence_in_memory.py CARD.json --cases 1200 --seed 300
"""
import json
import math

# isort: off
from phantom_in_memory import CLASSES, model_and_studies_arguments, render_banks  # first: DVTStagingLib on the path
# isort: on

from DVTStagingLib.core.files import write_text_atomic  # noqa: E402
from DVTStagingLib.staging.inference import Stager  # noqa: E402
from DVTStagingLib.training.calibration import (  # noqa: E402
    fit_confidence_threshold,
    rounded_fit,
    trusted_predictions,
    trusted_split_metrics,
)


def main():
    args = model_and_studies_arguments(__doc__.splitlines()[0])
    stager = Stager(str(args.card), "cpu")
    (bank,) = render_banks(args.cases, args.seed, [stager.cfg.input], stager.cfg.architecture != "vdpf",
                           stager.cfg.crop_margin_px, args.workers, splits=("val", "test"))
    val, test = bank.split("val"), bank.split("test")
    stager.trust.confidence_threshold = None          # probabilities first, then the threshold
    probs, _, _ = trusted_predictions(stager.model, stager.trust, val, stager.device)
    threshold, rule = fit_confidence_threshold(probs, val.roi_labels())
    stager.trust.confidence_threshold = math.floor(threshold * 1e4) / 1e4
    card = json.loads(args.card.read_text(encoding="utf-8"))
    old = card["trust"]["confidence_threshold"]
    card["trust"]["confidence_threshold"] = stager.trust.confidence_threshold
    fit = {k: v for k, v in card["trust"].get("fit", {}).items() if k != "target_coverage"}
    card["trust"]["fit"] = {**fit, **rounded_fit(rule),
                            "confidence_refit": f"tools/refit_confidence_in_memory.py --cases {args.cases} "
                                                f"--seed {args.seed} (was {old}, 95% validation coverage)"}
    for name, part in (("val", val), ("test", test)):
        scores = card["metrics"][name] = trusted_split_metrics(stager.model, stager.trust, part, stager.device,
                                                               CLASSES)
        print(f"{name}: macro F1 {scores['macro_f1']:.3f}, indeterminate {scores['indeterminate_rate']:.3f}, "
              f"n {scores['n']}")
    write_text_atomic(args.card, json.dumps(card, indent=1))
    print(f"confidence threshold {old} -> {stager.trust.confidence_threshold} ({rule})")


if __name__ == "__main__":
    main()
