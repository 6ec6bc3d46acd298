from __future__ import annotations

from ..core.errors import UserError
from . import options

NAME = "benchmark-service"
HELP = "cold local stage against a warm staging server, and a load test"


def add_arguments(p):
    options.add_device(p)
    p.add_argument("--repeats", type=int, default=5, help="runs of each latency measurement (median)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients of the load test")
    p.add_argument("--studies", type=int, default=10, help="studies each client stages")
    p.add_argument("--server-jobs", type=int, default=None,
                   help="the server's --jobs (default: its own; more than 1 batches slices across requests)")
    options.add_json(p)


def run(args) -> int:
    from ..service.benchmark import run_service_benchmark

    if args.repeats < 1 or args.clients < 1 or args.studies < 1:
        raise UserError("--repeats, --clients and --studies must be at least 1")
    run_service_benchmark(device=args.device, repeats=args.repeats, clients=args.clients, studies=args.studies,
                          as_json=args.json, server_jobs=args.server_jobs)
    return 0
