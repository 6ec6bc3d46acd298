from __future__ import annotations

from ..core.errors import UserError
from . import options

NAME = "evaluate"
HELP = "metrics of a model on a dataset split, or the comparison table"


def add_arguments(p):
    options.add_data(p)
    options.add_model(p)
    options.add_detector(p, "thrombus detector scored beside the model (detection, detected ROIs, content check)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split to score; all: every case (a held-out dataset)")
    options.add_device(p)
    p.add_argument("--compare", action="store_true",
                   help="train and score the VDPF ablations and the crop baselines on the same split")
    p.add_argument("--config", default="vdpf-small", help="base config of the comparison")
    p.add_argument("--epochs", type=int, default=None, help="comparison: epochs per variant")
    p.add_argument("--variants", nargs="+", default=None, help="comparison: table rows to run (default: all)")
    p.add_argument("--roi-jitter", type=int, default=0, metavar="N",
                   help="also stage N redrawn boxes per true ROI (centre moved up to 4 mm, each side scaled "
                        "x0.8-1.4) and report how often the answer holds")
    options.add_seed(p)
    options.add_output(p, "dvt-evaluate")


def run(args) -> int:
    from ..training.evaluate import compare, evaluate_model

    if args.roi_jitter < 0:
        raise UserError("--roi-jitter must be 0 or more")
    if args.compare:
        compare(args.data, args.out, base=args.config, epochs=args.epochs, seed=args.seed, device=args.device,
                variants=args.variants, model=args.model, overwrite=args.overwrite)
    else:
        evaluate_model(args.data, args.model, args.out, split=args.split, device=args.device, overwrite=args.overwrite,
                       detector=args.detector, roi_jitter=args.roi_jitter)
    return 0
