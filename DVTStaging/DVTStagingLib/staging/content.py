"""Is there thrombus-like content in an ROI?  The bundled detector's thrombus probability inside the box.

A second abstention signal beside the feature-space distance (staging.trust): an ROI placed on a normal
vein or on muscle of an otherwise familiar study looks in-distribution to the staging network, but the
detector, trained to find thrombus voxels, sees none there.  Only the ROI's slices are run, and of a long
ROI at most CONTENT_SLICES evenly spaced ones: a thrombus runs along its box, so denser sampling would
only add time to every Stage click (the detector is most of a long ROI's staging time on a CPU).
"""

from __future__ import annotations

import numpy as np
import torch

from ..detection.view import prepare_view, resample_mask
from ..io.roi import BoxROI
from ..io.volume import Volume
from .slices import evenly_spaced
from .trust import content_reason

CONTENT_SLICES = 24


@torch.inference_mode()
def roi_thrombus_probability(detector, volume: Volume, roi: BoxROI, view=None) -> float:
    """The highest thrombus probability the detector gives a voxel inside the ROI box (0..1)."""
    view = view if view is not None else prepare_view(volume, detector.spec)
    box = resample_mask(view, roi.voxel_mask(volume)) > 0.5
    slices = np.flatnonzero(box.flatten(1).any(dim=1).numpy())
    if slices.size == 0:
        return 0.0
    slices = slices[evenly_spaced(slices.size, CONTENT_SLICES)]
    best = 0.0
    for start in range(0, len(slices), 16):
        idx = slices[start: start + 16]
        x = view.inputs(idx).to(detector.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
        prob = torch.sigmoid(detector.network(x).float()).cpu()
        best = max(best, float((prob * box[idx]).amax()))
    return best


def thrombus_check(detector, volume: Volume, roi: BoxROI, view=None) -> tuple[float, str | None]:
    """The ROI's thrombus probability and, below the detector's pixel threshold, why it is indeterminate."""
    probability = roi_thrombus_probability(detector, volume, roi, view)
    return probability, content_reason(probability, detector.post.pixel_threshold)
