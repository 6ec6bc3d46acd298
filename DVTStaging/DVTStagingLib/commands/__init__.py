"""The `dvt-staging` subcommands, one module each (as pip's and git's are).

Every module defines NAME, HELP, `add_arguments(parser)` and `run(args) -> int`
(`dataset` adds its own actions instead of `run`).  Options that several
commands share live once in `options.py`.  Heavy imports (torch) stay inside
`run`, so the parser and the light commands start fast.
"""

from . import (adapt, benchmark, benchmark_service, calibrate, dataset, demo, detect, evaluate, evaluate_ood, phantom,
               serve, stage, train, train_detector)

# In the order `dvt-staging --help` lists them.
ALL = (demo, stage, serve, train, adapt, evaluate, evaluate_ood, calibrate, benchmark, benchmark_service, detect,
       train_detector, phantom, dataset)
