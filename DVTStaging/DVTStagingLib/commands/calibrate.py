from __future__ import annotations

from ..core.errors import UserError
from . import options

NAME = "calibrate"
HELP = ("fit a model's temperature and abstention thresholds on a dataset "
        "(train: OOD statistics; val: temperature and thresholds)")


def add_arguments(p):
    options.add_data(p)
    options.add_model(p)
    p.add_argument("--model-id", default=None, help="id of the calibrated model (default: <model>-calibrated)")
    p.add_argument("--publish", action="store_true", help="also add it to the user catalogue")
    options.add_device(p)
    options.add_output(p, "dvt-calibrate")


def run(args) -> int:
    from ..training.calibration import calibrate_model

    model_id = args.model_id
    if not args.overwrite and model_id and (args.out / f"{model_id}.json").exists():
        raise UserError(f"{args.out / (model_id + '.json')} exists; pass --overwrite to replace it")
    calibrate_model(args.data, args.model, args.out, model_id=model_id, device=args.device, publish=args.publish)
    return 0
