"""Hand-placed ROIs: does the stage hold when the box is drawn a little differently?

A reader never draws the box an annotator drew.  Each true ROI is redrawn `n` times: its centre moved by
up to `shift_mm` in a random direction and each side scaled by a factor in `scale` (still around the
thrombus: a redraw that no longer holds the original box's centre is drawn again), then staged like any
ROI (model, trust and the detector's content check).  A redraw is stable when it gives the original ROI's
answer or abstains (answers indeterminate): a different stage is the failure.
"""

from __future__ import annotations

import numpy as np

from ..core.progress import Progress
from ..core.stages import INDETERMINATE
from ..io.roi import BoxROI

SHIFT_MM = 4.0
SCALE = (0.8, 1.4)


def redrawn_rois(roi: BoxROI, rng: np.random.Generator, n: int, shift_mm: float = SHIFT_MM,
                 scale: tuple[float, float] = SCALE) -> list[BoxROI]:
    """`n` boxes like `roi`, moved by up to `shift_mm` (uniform in the ball) and scaled per side, each still
    holding the centre of `roi`."""
    out = []
    while len(out) < n:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        shift = direction * shift_mm * rng.random() ** (1 / 3)
        factors = rng.uniform(*scale, size=3)
        box = BoxROI(f"{roi.name}-redraw-{len(out)}", roi.center_ras + shift, roi.size_mm * factors, roi.axes_ras)
        if box.contains_ras(roi.center_ras[None, :])[0]:
            out.append(box)
    return out


def jitter_stability(stager, detector, studies, n: int = 10, seed: int = 0, total: int | None = None) -> dict:
    """Stability of the answers over redrawn ROIs.

    `studies`: iterable of (case id, Volume, [true BoxROI]), `total` of them (for the progress lines;
    default: its length).  Returns the share of stable redraws, the share that abstained and per-ROI records."""
    rng = np.random.default_rng(seed)
    records = []
    progress = Progress("ROI redraws", len(studies) if total is None else total)
    for case_id, volume, rois in studies:
        for roi in rois:
            redraws = [r for r in redrawn_rois(roi, rng, n) if r.fraction_inside(volume) > 0]
            _, results = stager.stage(volume, [roi, *redraws], want_attention=False, show_progress=False,
                                      detector=detector)
            answers = [r.stage(stager.classes) for r in results]
            original, others = answers[0], answers[1:]
            stable = [a == original or a == INDETERMINATE for a in others]
            records.append({"case": case_id, "roi": roi.name, "original": original,
                            "redraws": len(others), "stable": int(sum(stable)),
                            INDETERMINATE: int(sum(a == INDETERMINATE for a in others)),
                            "other_stage": sorted({a for a in others if a not in (original, INDETERMINATE)})})
        progress.update()
    total = sum(r["redraws"] for r in records)
    return {
        "rule": f"centre moved up to {SHIFT_MM:g} mm, each side scaled x{SCALE[0]}-{SCALE[1]}; stable = the "
                "original answer or indeterminate",
        "rois": len(records), "redraws": total,
        "stable_rate": sum(r["stable"] for r in records) / total if total else None,
        "indeterminate_rate": sum(r[INDETERMINATE] for r in records) / total if total else None,
        "per_roi": records,
    }
