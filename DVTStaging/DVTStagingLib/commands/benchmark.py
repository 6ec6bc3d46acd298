from __future__ import annotations

from ..core.errors import UserError
from . import options

NAME = "benchmark"
HELP = "slice pairs/s and FLOP/s against the measured matmul peak"


def add_arguments(p):
    options.add_device(p)
    p.add_argument("--repeats", type=int, default=5)
    options.add_json(p)


def run(args) -> int:
    from ..staging.benchmark import run_benchmark

    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    run_benchmark(device=args.device, repeats=args.repeats, as_json=args.json)
    return 0
