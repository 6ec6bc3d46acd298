from __future__ import annotations

from pathlib import Path

from . import options

NAME = "train-detector"
HELP = "train the thrombus detector on a dataset's train split"


def add_arguments(p):
    options.add_data(p, help_text="dataset folder (dataset.json) with train/val/test splits")
    p.add_argument("--out", type=Path, required=True, help="folder for the weights, model card and FROC picture")
    p.add_argument("--epochs", type=int, default=None, help="default: 25 (from scratch), 8 (--init)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: 200 (from scratch), 100 (--init)")
    p.add_argument("--init", default=None, metavar="ID/CARD",
                   help="fine-tune this catalogued detector; studies with ROI boxes but no thrombus mask learn "
                        "from its pseudo-masks inside the boxes")
    p.add_argument("--batch", type=int, default=16)
    options.add_seed(p)
    options.add_device(p)
    p.add_argument("--model-id", default="detector-phantom", help="catalogue id of the trained detector")


def run(args) -> int:
    from ..detection.commands import train_detector_command

    train_detector_command(args.data, args.out, epochs=args.epochs, seed=args.seed, device=args.device,
                           steps_per_epoch=args.steps_per_epoch, batch=args.batch, model_id=args.model_id,
                           init=args.init)
    return 0
