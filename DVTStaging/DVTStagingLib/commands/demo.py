from __future__ import annotations

from . import options

NAME = "demo"
HELP = "phantom study -> ROI -> staging -> overlay and report"


def add_arguments(p):
    options.add_output(p, "dvt-demo")
    options.add_seed(p, 2024)
    options.add_model(p)
    options.add_device(p)
    p.add_argument("--true-roi", action="store_true", help="stage the phantom's true ROI instead of detecting it")


def run(args) -> int:
    from ..demo import run_demo

    run_demo(args.out, seed=args.seed, model=args.model, device=args.device, overwrite=args.overwrite,
             true_roi=args.true_roi)
    return 0
