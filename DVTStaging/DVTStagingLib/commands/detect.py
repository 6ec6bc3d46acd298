from __future__ import annotations

from . import options

NAME = "detect"
HELP = "find thrombus ROIs in a study (2.5D detector)"


def add_arguments(p):
    options.add_input(p)
    options.add_detector(p, model_alias=True)
    options.add_device(p)
    p.add_argument("--segmentation", action="store_true", help="also write thrombus.seg.nrrd (detected thrombus)")
    options.add_output(p, "dvt-detect")
    options.add_server(p)


def run(args) -> int:
    from ..detection.commands import DETECT_OUTPUTS, detect_study

    remote = options.run_on_server(args, "detect", DETECT_OUTPUTS)
    if remote is not None:
        return remote
    detect_study(args.input, args.out, model=args.detector, device=args.device, overwrite=args.overwrite,
                 segmentation=args.segmentation)
    return 0
