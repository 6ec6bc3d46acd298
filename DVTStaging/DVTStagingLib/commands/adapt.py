from __future__ import annotations

from pathlib import Path

from . import options

NAME = "adapt"
HELP = "fine-tune the staging model and the detector on a site's own labeled studies (one command)"


def add_arguments(p):
    options.add_data(p, help_text="the site's dataset folder (dataset.json: labeled studies, boxes and stages; "
                                  "thrombus masks where there are)")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for staging.json, detector.json (cards, safetensors beside them) and the "
                        "before/after report")
    options.add_device(p)
    p.add_argument("--init-staging", default=None, metavar="ID/CARD",
                   help="staging model to start from (default: the bundled one)")
    p.add_argument("--init-detector", default=None, metavar="ID/CARD",
                   help="detector to start from (default: the bundled one)")
    options.add_seed(p)
    p.add_argument("--staging-epochs", type=int, default=None, help="at most this many epochs (default: 15)")
    p.add_argument("--detector-epochs", type=int, default=None, help="detector epochs (default: 8)")
    p.add_argument("--detector-steps", type=int, default=None, help="detector steps per epoch (default: 100)")
    p.add_argument("--no-publish", action="store_true", help="don't add the two models to the user catalogue")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier adapt run's files in --out")


def run(args) -> int:
    from ..core.errors import UserError
    from ..research.adapt import adapt

    for name in ("staging_epochs", "detector_epochs", "detector_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    adapt(args.data, args.out, device=args.device, init_staging=args.init_staging, init_detector=args.init_detector,
          seed=args.seed, overwrite=args.overwrite, staging_epochs=args.staging_epochs,
          detector_epochs=args.detector_epochs, detector_steps=args.detector_steps, publish=not args.no_publish)
    return 0
