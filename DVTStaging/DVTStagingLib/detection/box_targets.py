"""Training targets for a study annotated with ROI boxes only (most sites have boxes, not thrombus masks).

A box says "the thrombus is in here", not which of its pixels are thrombus: about half of a box around a
femoral thrombus is vessel wall, muscle and fat.  The pseudo-mask of a box is what the parent detector
(the model being adapted) calls thrombus inside it; on a box slice where the parent sees none, the ellipse
inscribed in the box's middle half, where a thrombus that fills its box lies.  Outside every box the target
is 0, as for a masked study.  The targets are soft where the parent is unsure (its probability), so a
wrong parent pixel weighs less than a sure one.
"""

from __future__ import annotations

import torch

from ..io.roi import BoxROI
from ..io.volume import Volume
from .detector import Detector, probability_maps
from .view import DetectorView, resample_mask

CORE_FRACTION = 0.5     # the fallback ellipse spans this share of the box's rows and columns


def _core_ellipse(box: torch.Tensor) -> torch.Tensor:
    """[H, W] bool: the ellipse inscribed in the middle CORE_FRACTION of the box's bounding rectangle."""
    rows = torch.nonzero(box.any(dim=1)).flatten()
    cols = torch.nonzero(box.any(dim=0)).flatten()
    cr, cc = (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2
    hr = max(float(rows[-1] - rows[0] + 1) * CORE_FRACTION / 2, 0.5)
    hc = max(float(cols[-1] - cols[0] + 1) * CORE_FRACTION / 2, 0.5)
    r = torch.arange(box.shape[0], dtype=torch.float32)[:, None]
    c = torch.arange(box.shape[1], dtype=torch.float32)[None, :]
    return (((r - cr) / hr) ** 2 + ((c - cc) / hc) ** 2 <= 1.0) & box


def box_pseudo_target(parent: Detector, view: DetectorView, volume: Volume, rois: list[BoxROI]) -> torch.Tensor:
    """[slices, H, W] target (0..1) on the detector grid of a study whose thrombi are given as boxes only."""
    target = torch.zeros(view.planes.shape, dtype=torch.float32)
    if not rois:
        return target
    boxes = [resample_mask(view, roi.voxel_mask(volume)) > 0.5 for roi in rois]
    box_slices = [torch.nonzero(box.flatten(1).any(dim=1)).flatten().tolist() for box in boxes]
    # The parent only looks at the slices the boxes cover: outside them the target is 0 whatever it sees.
    probability = probability_maps(parent, view, slices=[s for found in box_slices for s in found])
    threshold = parent.post.pixel_threshold
    for box, slices in zip(boxes, box_slices):
        for s in slices:
            inside = box[s]
            sure = (probability[s] >= threshold) & inside
            if bool(sure.any()):
                target[s] = torch.maximum(target[s], torch.where(sure, probability[s], 0.0))
            else:
                target[s] = torch.maximum(target[s], _core_ellipse(inside).float())
    return target

