"""Labeled studies prepared for detector training and evaluation: input stack, target and truth.

The truth of a study is twofold, matching the two ways detection is judged:
the voxel extents of its thrombus ROIs (per-thrombus, 3D) and one box per
thrombus region in every slice that shows thrombus (per-slice, the paper's
protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import UserError
from ..io.roi import BoxROI, read_rois
from ..io.segmentation import read_segmentation
from ..io.volume import Volume, read_volume
from .linking import SliceBox, slice_boxes
from .view import DetectorInput, DetectorView, prepare_view, resample_mask

TRUTH_JOIN_MM = 3.0   # thrombus regions closer than this in a slice are one true box (as for detections)


@dataclass
class PreparedStudy:
    case_id: str
    view: DetectorView
    target: torch.Tensor | None                    # [slices, H, W] thrombus fraction per detector pixel
    truth_extents: list[tuple[np.ndarray, np.ndarray]]   # inclusive ijk extents of the true ROIs
    truth_boxes: list[SliceBox]                    # per-slice true boxes, in view pixels

    @property
    def positive_slices(self) -> np.ndarray:
        if self.target is None:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(self.target.reshape(len(self.target), -1).amax(dim=1).float().numpy() >= 0.25)


def truth_slice_boxes(view: DetectorView, mask: np.ndarray) -> list[SliceBox]:
    oriented = view.orientation.apply(mask)
    row_mm, col_mm = view.orientation.spacing[1:]
    join = max(0, int(round(TRUTH_JOIN_MM / min(row_mm, col_mm))))
    boxes = []
    for s in np.flatnonzero(oriented.any(axis=(1, 2))):
        boxes.extend(slice_boxes(oriented[s].astype(np.float32), int(s), 0.5, join))
    return boxes


def prepare_study(case_id: str, volume: Volume, thrombus: np.ndarray | None, rois: list[BoxROI],
                  spec: DetectorInput, keep_volume: bool = False, with_target: bool = True,
                  box_parent=None) -> PreparedStudy:
    """Detector input and truth of one study; the volume itself is dropped unless asked to keep it.

    `box_parent` (a detection.detector.Detector): a study without a thrombus mask gets the pseudo-mask of its
    ROI boxes (detection.box_targets) as its target, instead of "no thrombus anywhere"."""
    view = prepare_view(volume, spec)
    boxes_only = thrombus is None and box_parent is not None and bool(rois)
    if thrombus is None:
        thrombus = np.zeros(volume.array.shape, dtype=bool)
    target = None
    if with_target and boxes_only:
        from .box_targets import box_pseudo_target

        target = box_pseudo_target(box_parent, view, volume, rois).to(torch.float16)
    elif with_target:
        target = resample_mask(view, thrombus).to(torch.float16)
    extents = [roi.ijk_extent(volume) for roi in rois]
    boxes = truth_slice_boxes(view, thrombus)
    if not keep_volume:
        view.volume = None        # a training cache holds hundreds of studies: keep only what training uses
    view.planes = view.planes.to(torch.float16) if not keep_volume else view.planes
    return PreparedStudy(case_id, view, target, extents, boxes)


def read_case(dataset, case) -> tuple[Volume, np.ndarray | None, list[BoxROI]]:
    """Image, thrombus mask (None without a segmentation) and true ROIs of a dataset case."""
    volume = read_volume(dataset.path(case.image))
    thrombus = None
    if case.segmentation:
        seg = read_segmentation(dataset.path(case.segmentation))
        if not seg.same_grid(volume):
            raise UserError(f"case {case.id}: segmentation grid differs from the image grid")
        thrombus = seg.find_mask("thrombus")
    rois = [roi for rel in case.rois for roi in read_rois(dataset.path(rel))]
    return volume, thrombus, rois


def load_case_study(dataset, case, spec: DetectorInput, keep_volume: bool = False,
                    with_target: bool = True, box_parent=None) -> PreparedStudy:
    volume, thrombus, rois = read_case(dataset, case)
    return prepare_study(case.id, volume, thrombus, rois, spec, keep_volume, with_target, box_parent)
