from __future__ import annotations

from pathlib import Path

from . import options

NAME = "evaluate-ood"
HELP = ("stage inputs the model must refuse (noise, geometry, brains, ROIs off the thrombus) and count how many "
        "come out indeterminate")


def add_arguments(p):
    options.add_model(p)
    options.add_data(p, required=False, help_text="a phantom dataset: ROIs moved onto a normal vein / muscle")
    p.add_argument("--phantom-cases", type=int, default=10, help="phantom studies used from --data (default 10)")
    p.add_argument("--brain", type=Path, nargs="*", default=[], help="brain MR volumes (e.g. mricron-data templates)")
    p.add_argument("--per-kind", type=int, default=5, help="synthetic volumes per kind (default 5)")
    options.add_seed(p)
    options.add_device(p)
    options.add_output(p, "dvt-ood")


def run(args) -> int:
    from ..core.files import prepare_output, write_json_atomic
    from ..core.progress import status
    from ..detection.detector import load_detector
    from ..io.dataset import load_dataset
    from ..staging.inference import Stager
    from ..training.ood import evaluate_ood, ood_inputs

    out = prepare_output(args.out, args.overwrite, names=("ood.json",))
    phantom = load_dataset(args.data) if args.data else None
    stager = Stager(args.model, args.device)
    report = evaluate_ood(stager, ood_inputs(args.seed, args.per_kind, args.brain, phantom, args.phantom_cases),
                          load_detector(None, args.device))
    report.update(model={"id": stager.entry.id, "sha256": stager.entry.card["sha256"]}, seed=args.seed)
    write_json_atomic(out / "ood.json", report)
    for kind, k in report["per_kind"].items():
        status(f"evaluate-ood: {kind}: {k['abstained']}/{k['n']} indeterminate")
    status(f"evaluate-ood: {report['abstained']}/{report['n']} indeterminate ({report['indeterminate_rate']:.0%}); "
           f"wrote {out / 'ood.json'}")
    return 0
