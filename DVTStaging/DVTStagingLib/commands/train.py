from __future__ import annotations

from pathlib import Path

from . import options

NAME = "train"
HELP = "train a staging model (works under torchrun for DDP)"


def add_arguments(p):
    options.add_data(p)
    p.add_argument("--config", default=None,
                   help="vdpf-small, vdpf-b16, vdpf-tiny or a JSON config file (default: vdpf-small)")
    p.add_argument("--init", default=None, metavar="ID/CARD",
                   help="fine-tune this catalogued staging model (its network; a small-data recipe) instead of "
                        "training from scratch")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, weights, model card")
    options.add_seed(p)
    p.add_argument("--epochs", type=int, default=None, help="override the config's epoch count")
    options.add_device(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--model-id", default=None, help="catalogue id of the trained model (default: config + time)")
    p.add_argument("--no-publish", action="store_true", help="don't add the model to the user catalogue")
    p.add_argument("--time-limit-min", type=options.positive_float, default=None,
                   help="stop with the best weights so far when the next epoch would end past this many minutes")
    p.add_argument("--bf16", action="store_true", help="mixed precision (bf16 autocast) on a GPU; ignored on a CPU")


def run(args) -> int:
    from ..models.config import load_config
    from ..training.train import run_training

    from ..core.errors import UserError

    if args.init is not None and args.config is not None:
        raise UserError("give either --config (train from scratch) or --init (fine-tune a model), not both")
    config = None if args.init is not None else load_config(args.config or "vdpf-small")
    run_training(args.data, config, args.out, seed=args.seed, device=args.device,
                 resume=args.resume, model_id=args.model_id, publish=not args.no_publish, epochs=args.epochs,
                 time_limit_s=None if args.time_limit_min is None else args.time_limit_min * 60, bf16=args.bf16,
                 init=args.init)
    return 0
