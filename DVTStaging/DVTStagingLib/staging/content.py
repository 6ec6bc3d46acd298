"""Is there thrombus-like content in an ROI?  The bundled detector's thrombus probability inside the box.

A second abstention signal beside the feature-space distance (staging.trust): an ROI placed on a normal
vein or on muscle of an otherwise familiar study looks in-distribution to the staging network, but the
detector, trained to find thrombus voxels, sees none there.  Only the ROI's slices are run, and of a long
ROI at most CONTENT_SLICES evenly spaced ones: a thrombus runs along its box, so denser sampling would
only add time to every Stage click (the detector is most of a long ROI's staging time on a CPU).

The network runs on the part of each slice that decides its output inside the box (the box's extent and the
network's receptive field, `context_window`), not on the whole slice: the same probability in less time.

Only the slices the check runs (and their neighbours, the detector's other two channels) are resampled to
the detector's grid, from the study the staging model already scaled when the two inputs agree: preparing
the detector's view of the whole study took longer than the check itself.  Each slice is resampled on its
own, so the probability is the one the whole-study view gives (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..detection.view import DetectorView, _resampled_size, resample_planes, resample_mask
from ..imaging.planes import intensity_scale, orientation_for
from ..imaging.signal_ratio import SEGMENT_MIN_VOXELS, SEGMENT_QUANTILE
from ..io.roi import BoxROI
from ..io.volume import Volume
from .slices import StudyView, evenly_spaced
from .trust import content_reason

CONTENT_SLICES = 24
BATCH = 16


def context_window(network, box: torch.Tensor) -> tuple[slice, slice]:
    """The rows and columns of the detector's input that decide its output inside `box` ([n, H, W] bool): the
    box's extent and the network's receptive field, on its pooling grid.  The network then runs on this
    window only, with the output the whole slice gives inside the box (a test compares them)."""
    stride, reach = getattr(network, "stride", None), getattr(network, "receptive_radius", None)
    window = []
    for axis, size in ((1, box.shape[1]), (2, box.shape[2])):
        if reach is None or size % stride:     # a network of unknown reach, or off its size rule: whole slice
            window.append(slice(0, size))
            continue
        inside = torch.nonzero(box.any(dim=0).any(dim=2 - axis)).flatten()
        first, last = int(inside[0]), int(inside[-1])
        start = max((first - reach) // stride * stride, 0)
        stop = min(-(-(last + 1 + reach) // stride) * stride, size)
        window.append(slice(start, stop))
    return window[0], window[1]


def windowed(network, inputs: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`inputs` ([n, 3, H, W]) and `box` ([n, H, W]) cut to the `context_window` of the box."""
    rows, cols = context_window(network, box)
    return inputs[:, :, rows, cols], box[:, rows, cols]


def _inside(detector, inputs: torch.Tensor, box: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The highest detector probability inside `box` ([n, H, W] bool) over `inputs` ([n, 3, H, W]), and the
    scaled intensities of the slices' own pixels (the middle channel) that it calls thrombus there."""
    if not bool(box.any()):
        return 0.0, torch.zeros(0)
    inputs, box = windowed(detector.network, inputs, box)
    best, found = 0.0, []
    for start in range(0, len(inputs), BATCH):
        part = slice(start, start + BATCH)
        x = inputs[part].to(detector.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
        prob = torch.sigmoid(detector.network(x).float()).cpu()
        best = max(best, float((prob * box[part]).amax()))
        found.append(inputs[part, 1][(prob >= detector.post.pixel_threshold) & box[part]])
    return best, torch.cat(found)


def _max_inside(detector, inputs: torch.Tensor, box: torch.Tensor) -> float:
    return _inside(detector, inputs, box)[0]


def _scaled_view(detector, volume: Volume, study: StudyView | None):
    """(orientation, view-ordered scaled voxels, (low, high) raw intensities scaled to 0 and 1) as the
    detector's view scales them: the staging study's own array when plane and scaling agree (the percentiles
    are then computed once per study)."""
    spec = detector.spec
    orientation = orientation_for(volume, spec.plane)
    s = study.spec if study is not None else None
    if (s is not None and study.orientation == orientation and s.low_percentile == spec.low_percentile
            and s.high_percentile == spec.high_percentile and s.clip_max == spec.clip_max):
        return orientation, study.scaled, study.intensity
    low, high = intensity_scale(volume.array, spec.low_percentile, spec.high_percentile)
    view = orientation.apply(volume.array)
    return orientation, _Scaled(view, low, high, spec.clip_max), (low, high)


class _Scaled:
    """Scaled slices on demand (indexing by slice), as `prepare_view` scales the whole view."""

    def __init__(self, view, low, high, clip_max):
        self.view, self.low, self.high, self.clip_max = view, low, high, clip_max

    def __getitem__(self, index):
        return np.clip((self.view[index].astype(np.float32) - self.low) / (self.high - self.low), 0.0, self.clip_max)


def content_inputs(detector, volume: Volume, roi: BoxROI, study: StudyView | None = None):
    """(inputs [n, 3, H, W], box [n, H, W] bool) of the slices the check runs; None when the box covers
    no detector pixel."""
    found = _content_inputs(detector, volume, roi, study)
    return None if found is None else found[:2]


def _content_inputs(detector, volume: Volume, roi: BoxROI, study: StudyView | None):
    """`content_inputs` and the (low, high) raw intensities of their scale."""
    spec = detector.spec
    orientation, scaled, intensity = _scaled_view(detector, volume, study)
    same_view = study is not None and study.orientation == orientation and study.volume is volume
    oriented = study.box(roi) if same_view else orientation.apply(roi.voxel_mask(volume))
    covered = np.flatnonzero(oriented.any(axis=(1, 2)))
    if covered.size == 0:
        return None
    rows, cols = oriented.shape[1:]
    size = _resampled_size(rows, cols, orientation.spacing[1], orientation.spacing[2], spec.pixel_mm)
    # Slices with a box pixel (more than half covered) on the detector's grid, as resample_mask finds them.
    box = resample_planes(oriented[covered].astype(np.float32), size, spec.stride, mode="area") > 0.5
    keep = box.flatten(1).any(dim=1).numpy()
    slices, box = covered[keep], box[torch.from_numpy(keep)]
    if slices.size == 0:
        return None
    chosen = evenly_spaced(slices.size, CONTENT_SLICES)
    slices, box = slices[chosen], box[torch.from_numpy(chosen)]
    n = oriented.shape[0]
    below, above = np.maximum(slices - 1, 0), np.minimum(slices + 1, n - 1)   # edges repeat the end slice
    needed = np.unique(np.concatenate([below, slices, above]))
    planes = resample_planes(scaled[needed], size, spec.stride)
    at = {int(s): i for i, s in enumerate(needed)}
    pick = lambda idx: planes[torch.as_tensor([at[int(s)] for s in idx])]   # noqa: E731
    return torch.stack([pick(below), pick(slices), pick(above)], dim=1), box, intensity


@torch.inference_mode()
def roi_thrombus_probability(detector, volume: Volume, roi: BoxROI, view: DetectorView | None = None,
                             study: StudyView | None = None) -> float:
    """The highest thrombus probability the detector gives a voxel inside the ROI box (0..1).

    `view`: the detector's view of the whole study where a caller has one (detection, evaluation); else
    only the slices the check runs are prepared, from `study` when given."""
    if view is None:
        return content_check(detector, volume, roi, study).probability
    box = resample_mask(view, roi.voxel_mask(volume)) > 0.5
    slices = np.flatnonzero(box.flatten(1).any(dim=1).numpy())
    if slices.size == 0:
        return 0.0
    slices = slices[evenly_spaced(slices.size, CONTENT_SLICES)]
    return _max_inside(detector, view.inputs(slices), box[slices])


def thrombus_check(detector, volume: Volume, roi: BoxROI, view: DetectorView | None = None,
                   study: StudyView | None = None) -> tuple[float, str | None]:
    """The ROI's thrombus probability and, below the detector's pixel threshold, why it is indeterminate."""
    probability = roi_thrombus_probability(detector, volume, roi, view, study)
    return probability, content_reason(probability, detector.post.pixel_threshold)


@dataclass
class ContentCheck:
    probability: float            # the highest thrombus probability inside the box
    reason: str | None            # why the ROI is indeterminate (None: thrombus-like content found)
    signal: float | None          # raw intensity of the pixels called thrombus (None: too few; see content_check)


@torch.inference_mode()
def content_check(detector, volume: Volume, roi: BoxROI, study: StudyView | None = None) -> ContentCheck:
    """`thrombus_check` of a staged ROI, with the thrombus signal of the pixels it finds in the box on the
    slices it runs: the thrombus/muscle ratio's numerator for an ROI placed by hand (a box alone is a coarse
    guide to it; imaging.signal_ratio).  The signal is the pixels' upper quartile, as for a segment
    (imaging.signal_ratio.SEGMENT_QUANTILE): on the detector's coarser grid, partial volume with the dark
    lumen and wall lowers the rest."""
    found = _content_inputs(detector, volume, roi, study)
    probability, pixels = (0.0, torch.zeros(0)) if found is None else _inside(detector, *found[:2])
    signal = None
    if pixels.numel() >= SEGMENT_MIN_VOXELS:
        low, high = found[2]
        signal = float(torch.quantile(pixels.float(), SEGMENT_QUANTILE)) * (high - low) + low
    return ContentCheck(probability, content_reason(probability, detector.post.pixel_threshold), signal)
