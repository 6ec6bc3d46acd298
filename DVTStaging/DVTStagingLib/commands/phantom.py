from __future__ import annotations

from pathlib import Path

from . import options

NAME = "phantom"
HELP = "write a labeled synthetic BTI dataset"


def add_arguments(p):
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cases", type=int, default=8)
    options.add_seed(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--normal-fraction", type=float, default=0.0, help="share of studies without thrombus")
    p.add_argument("--preview", action="store_true", help="also write preview.png, one study per stage")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same --out (same --cases, --seed, --style): studies "
                        "already written are kept, the rest drawn")
    p.add_argument("--style", default=None,
                   help="drawing style (default: analytic, the training style; a held-out style is an external "
                        "site for scoring only, see docs/phantom.md)")


def run(args) -> int:
    from ..core.progress import status
    from ..phantom.preview import measure_case, ratio_statistics, write_preview
    from ..phantom.styles import TRAINING_STYLE
    from ..phantom.writer import write_phantom_dataset

    dataset = write_phantom_dataset(args.out, args.cases, args.seed, workers=args.workers,
                                    overwrite=args.overwrite, normal_fraction=args.normal_fraction,
                                    style=args.style or TRAINING_STYLE, resume=args.resume)
    status(f"phantom: wrote {len(dataset.cases)} studies to {args.out}")
    if args.preview:
        measurements = [m for case in dataset.cases for m in measure_case(dataset, case)]
        path = write_preview(dataset, args.out / "preview.png", measurements)
        for stage, s in ratio_statistics(measurements).items():
            status(f"phantom: {stage:9s} thrombus/muscle ratio {s['mean']:.2f} ± {s['sd']:.2f} (n={s['n']})")
        status(f"phantom: preview {path}")
    return 0
