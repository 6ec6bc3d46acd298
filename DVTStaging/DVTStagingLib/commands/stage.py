from __future__ import annotations

from pathlib import Path

from . import options

NAME = "stage"
HELP = "stage every thrombus ROI of a study"


def add_arguments(p):
    options.add_input(p)
    p.add_argument("--roi", type=Path, help="Slicer markups JSON with the thrombus ROI(s)")
    p.add_argument("--auto-roi", action="store_true", help="detect thrombus ROIs automatically")
    options.add_model(p)
    options.add_detector(p, "thrombus detector (auto ROIs and the content check)")
    options.add_device(p)
    options.add_output(p, "dvt-stage")
    options.add_server(p)


def run(args) -> int:
    from ..staging.outputs import STAGE_OUTPUTS

    remote = options.run_on_server(args, "stage", STAGE_OUTPUTS)
    if remote is not None:
        return remote
    from ..staging.pipeline import stage_study

    stage_study(args.input, args.out, roi_path=args.roi, auto_roi=args.auto_roi, model=args.model,
                device=args.device, overwrite=args.overwrite, detector=args.detector)
    return 0
