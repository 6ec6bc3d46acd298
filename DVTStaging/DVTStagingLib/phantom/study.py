"""One complete phantom study: image, tissue labels, thrombus ROIs and ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.roi import BoxROI
from ..io.volume import Volume
from .render import render
from .scanner import acquire
from .spec import sample_case

TRUTH_SCHEMA = "dvt-staging/phantom-truth@1"
ROI_MARGIN_MM = 3.0


@dataclass
class PhantomStudy:
    volume: Volume           # int16 image, as a scanner stores it
    labels: np.ndarray       # [k, j, i] tissue labels (segmentation.TISSUE_SEGMENTS)
    instances: np.ndarray    # [k, j, i] thrombus number (1-based) or 0
    rois: list               # BoxROI per thrombus, same order as truth["thrombi"]
    truth: dict


def thrombus_roi(volume: Volume, mask: np.ndarray, name: str, margin_mm: float = ROI_MARGIN_MM) -> BoxROI:
    """A box around a thrombus mask, oriented like the volume, with a margin as an annotator draws it."""
    k, j, i = np.nonzero(mask)
    margin = np.maximum(np.ceil(margin_mm / volume.spacing), 1).astype(int)
    size = np.array(volume.shape_ijk)
    lo = np.maximum(np.array([i.min(), j.min(), k.min()]) - margin, 0)
    hi = np.minimum(np.array([i.max(), j.max(), k.max()]) + margin, size - 1)
    return BoxROI.from_ijk_extent(volume, lo, hi, name)


def make_study(seed: int, stages: list[str]) -> PhantomStudy:
    """Draw and render one study with a thrombus of each given stage (0-2 of them)."""
    spec = sample_case(seed, stages)
    rendered = render(spec)
    acq = spec.acquisition
    stored = acquire(rendered.intensity, acq, np.random.default_rng([seed, 1]))
    volume = Volume(stored, acq.spacing, acq.origin_lps, np.asarray(acq.direction_lps),
                    {"source_format": "phantom"})
    rois, thrombi = [], []
    for n, t in enumerate(spec.thrombi, start=1):
        mask = rendered.instances == n
        if not mask.any():
            raise RuntimeError(f"phantom seed {seed}: thrombus {n} fell outside the field of view")
        name = f"thrombus-{n}"
        rois.append(thrombus_roi(volume, mask, name))
        thrombi.append({
            "roi": name, "stage": t.stage, "side": t.side, "ratio": t.ratio, "vein_scale": t.vein_scale,
            "edema_mm": t.edema_mm, "channels": len(t.channels), "wall_thickening_mm": t.wall_thickening_mm,
            "collaterals": len(t.collaterals), "eccentric": t.eccentric, "small": t.small,
            "length_mm": t.length, "voxels": int(mask.sum()),
        })
    truth = {
        "schema": TRUTH_SCHEMA,
        "seed": int(seed),
        "thrombi": thrombi,
        "acquisition": {"stack": acq.stack, "oblique_deg": acq.oblique_deg, "gain": acq.gain, "noise": acq.noise},
        "spec": spec.to_dict(),
    }
    return PhantomStudy(volume, rendered.labels, rendered.instances, rois, truth)
