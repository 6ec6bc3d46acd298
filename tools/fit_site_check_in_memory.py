"""Add the site check (staging.trust) to a staging model trained by tools/train_in_memory.py, on its own studies.

The model's training, validation and test studies (`dvt-staging phantom --cases N --seed S`) are rendered again
in memory (tools/phantom_in_memory.py); the check's Gaussians are fit on the training split's slices and its
threshold on the validation ROIs (training.calibration.fit_site_check); `metrics.val` and `metrics.test` are
scored again with it.  Temperature, confidence threshold, the fused-feature OOD check and the network's weights
stay as they are.  `dvt-staging calibrate` fits the whole trust section, this check included, from studies on disk.

  python3 tools/fit_site_check_in_memory.py CARD.json --cases 1200 --seed 300 [--site-threshold T]
"""
import json
import time

# isort: off
from phantom_in_memory import CLASSES, model_and_studies_arguments, render_banks  # first: DVTStagingLib on the path
# isort: on

from DVTStagingLib.models.catalog import save_model  # noqa: E402
from DVTStagingLib.staging.inference import Stager  # noqa: E402
from DVTStagingLib.training.calibration import (  # noqa: E402
    fit_site_check,
    rounded_fit,
    slice_outputs,
    trust_tensors,
    trusted_split_metrics,
)


def _threshold_argument(parser):
    parser.add_argument("--site-threshold", type=float, default=None,
                        help="the check's operating point instead of the validation quantile "
                             "(the bundled model's was chosen on selection draws of both styles: "
                             "docs/results/robustness-bundled.md)")


def main():
    args = model_and_studies_arguments(__doc__.splitlines()[0], _threshold_argument)
    stager = Stager(str(args.card), "cpu")
    start = time.perf_counter()
    (bank,) = render_banks(args.cases, args.seed, [stager.cfg.input], stager.cfg.architecture != "vdpf",
                           stager.cfg.crop_margin_px, args.workers)
    train, val, test = bank.split("train"), bank.split("val"), bank.split("test")
    print(f"rendered {len(train.rois)}/{len(val.rois)}/{len(test.rois)} ROIs in {time.perf_counter() - start:.0f} s")
    _, _, train_layers = slice_outputs(stager.model, train, stager.device)
    _, _, val_layers = slice_outputs(stager.model, val, stager.device)
    trust = stager.trust
    report = fit_site_check(trust, train_layers, train.roi_labels()[train.roi_of_slice], val_layers,
                            val.roi_of_slice, len(val.rois), len(CLASSES), threshold=args.site_threshold)
    card = json.loads(args.card.read_text(encoding="utf-8"))
    earlier = {k: v for k, v in card["trust"].get("fit", {}).items()      # the rest of the trust's fit stays
               if not k.startswith(("site_", "val_site_", "val_share_over_site"))}
    fit = {**earlier, **rounded_fit(report)}
    chosen = "" if args.site_threshold is None else f" --site-threshold {args.site_threshold}"
    fit["site_fit"] = (f"tools/fit_site_check_in_memory.py --cases {args.cases} --seed {args.seed}{chosen}: "
                       f"{len(train_layers)} training slices, {len(val.rois)} validation ROIs")
    trust.fit = fit
    card["trust"] = trust.card_section()
    for name, part in (("val", val), ("test", test)):
        scores = card["metrics"][name] = trusted_split_metrics(stager.model, trust, part, stager.device, CLASSES)
        print(f"{name}: macro F1 {scores['macro_f1']:.3f}, indeterminate {scores['indeterminate_rate']:.3f}, "
              f"n {scores['n']}")
    card = {k: v for k, v in card.items() if k not in ("id", "sha256", "weights", "schema")}
    weights = {**stager.model.state_dict(), **trust_tensors(trust)}
    stem = args.card.stem
    entry = save_model(weights, card, args.card.parent, stager.entry.id, stem=stem)
    print(f"site threshold {trust.site_threshold} ({report}); wrote {entry.card_path.name}")


if __name__ == "__main__":
    main()
