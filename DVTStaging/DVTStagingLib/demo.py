"""`dvt-staging demo`: phantom study -> ROI (auto-detected) -> staging -> overlays and report."""

from __future__ import annotations

import time
from pathlib import Path

from .core.files import prepare_output
from .core.progress import status
from .staging.outputs import STAGE_OUTPUTS
from .staging.pipeline import load_stage_inputs, stage_study

DEMO_STUDY = "study"


def write_demo_study(out: Path, seed: int, overwrite: bool):
    """A phantom study (one acute thrombus) with its true ROI and truth, under out/study."""
    from .phantom.study import make_study
    from .phantom.writer import write_study

    prepare_output(out, overwrite, names=(DEMO_STUDY,) + STAGE_OUTPUTS)
    study = make_study(seed, ["acute"])
    files = write_study(study, out / DEMO_STUDY)
    return study, {k: (out / DEMO_STUDY / v if isinstance(v, str) else [out / DEMO_STUDY / f for f in v])
                   for k, v in files.items()}


def run_demo(out, seed=2024, model=None, device="auto", overwrite=False, true_roi=False):
    """Phantom study -> ROI (auto-detected unless `true_roi`) -> staging -> overlays and report."""
    started = time.perf_counter()
    out = Path(out)
    study, files = write_demo_study(out, seed, overwrite)
    truth = study.truth["thrombi"][0]
    status(f"demo: phantom study {files['image']} (true stage {truth['stage']}, "
           f"thrombus/muscle ratio {truth['ratio']:.2f})")
    volume, _ = load_stage_inputs(files["image"], files["rois"][0], auto_roi=False)
    rois = study.rois if true_roi else None
    status("demo: using the phantom's true ROI" if true_roi else "demo: ROIs by auto-detection")
    result = stage_study(files["image"], out, model=model, device=device, overwrite=True, rois=rois, volume=volume)
    status(f"demo: finished in {time.perf_counter() - started:.1f} s; report {out / 'report.png'}")
    return result
