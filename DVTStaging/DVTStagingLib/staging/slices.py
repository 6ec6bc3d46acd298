"""Slice pairs for VDPF: the whole slice (I_G) and the same slice outside the ROI box zeroed (I_L).

Slices are taken in a patient plane (axial by default, as in the paper),
whatever the volume's stack direction: the voxel array is only transposed
and flipped, never interpolated across slices, so every model slice is one
stored plane and maps back to the voxel grid exactly.  In-plane, the slice
is shown the radiological way (patient right on the image's left), padded
to a square field of view in millimetres and resized to the model's size.
Intensities are scaled per study by percentiles, so scanner gain carries no
information; the local image keeps the global image's scale so that the
thrombus-to-muscle contrast survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..imaging.planes import Orientation, intensity_scale, orientation_for
from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models.config import InputSpec


@dataclass
class PlaneFrame:
    """Where the model's square image sits in a view slice (for mapping attention back)."""

    rows: int
    cols: int
    pad_rows: tuple[int, int]     # padding (before, after) in view pixels
    pad_cols: tuple[int, int]

    def padded_shape(self) -> tuple[int, int]:
        return self.rows + sum(self.pad_rows), self.cols + sum(self.pad_cols)

    def to_view(self, square: torch.Tensor) -> torch.Tensor:
        """[n, S, S] model-grid maps -> [n, rows, cols] view-slice maps (bilinear)."""
        h, w = self.padded_shape()
        up = F.interpolate(square[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        return up[:, self.pad_rows[0]: self.pad_rows[0] + self.rows, self.pad_cols[0]: self.pad_cols[0] + self.cols]


def plane_frame(rows: int, cols: int, row_mm: float, col_mm: float) -> PlaneFrame:
    """Pad a rows x cols slice to a square field of view in millimetres, centred."""
    side_mm = max(rows * row_mm, cols * col_mm)
    want_rows = int(round(side_mm / row_mm))
    want_cols = int(round(side_mm / col_mm))
    pr, pc = max(want_rows - rows, 0), max(want_cols - cols, 0)
    return PlaneFrame(rows, cols, (pr // 2, pr - pr // 2), (pc // 2, pc - pc // 2))


def to_model_grid(planes: torch.Tensor, frame: PlaneFrame, size: int) -> torch.Tensor:
    """[n, rows, cols] -> [n, 1, size, size]: pad to the square field of view, then resize."""
    padded = F.pad(planes[:, None], (frame.pad_cols[0], frame.pad_cols[1], frame.pad_rows[0], frame.pad_rows[1]))
    return F.interpolate(padded, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@dataclass
class StudyView:
    """A study prepared once for staging any number of ROIs."""

    volume: Volume
    spec: InputSpec
    orientation: Orientation
    scaled: np.ndarray            # view-ordered [slice, row, col], float32, scaled intensities
    frame: PlaneFrame


def prepare_study(volume: Volume, spec: InputSpec) -> StudyView:
    orientation = orientation_for(volume, spec.plane)
    low, high = intensity_scale(volume.array, spec.low_percentile, spec.high_percentile)
    view = orientation.apply(volume.array).astype(np.float32)
    scaled = np.clip((view - low) / (high - low), 0.0, spec.clip_max)
    _, rows, cols = scaled.shape
    frame = plane_frame(rows, cols, orientation.spacing[1], orientation.spacing[2])
    return StudyView(volume, spec, orientation, np.ascontiguousarray(scaled), frame)


@dataclass
class SlicePairs:
    """Model inputs for one ROI: I_G, the box mask (I_L = I_G * mask) and where each slice came from."""

    roi: BoxROI
    global_images: torch.Tensor   # [n, 1, S, S]
    box_masks: torch.Tensor       # [n, 1, S, S] in [0, 1]
    view_slices: np.ndarray       # slice index in the view order
    volume_slices: np.ndarray     # index along the volume's own axis (see `axis`)
    axis: str                     # "i", "j" or "k": the volume axis the slices cut across

    @property
    def local_images(self) -> torch.Tensor:
        return self.global_images * self.box_masks

    def __len__(self) -> int:
        return len(self.view_slices)


def slice_pairs(study: StudyView, roi: BoxROI) -> SlicePairs:
    """Every view slice the ROI covers, as model-ready global images and box masks."""
    box = study.orientation.apply(roi.voxel_mask(study.volume))
    covered = np.flatnonzero(box.any(axis=(1, 2)))
    if covered.size == 0:
        raise UserError(f"ROI '{roi.name}' covers no voxel of the volume")
    planes = torch.from_numpy(study.scaled[covered])
    masks = torch.from_numpy(np.ascontiguousarray(box[covered]).astype(np.float32))
    size = study.spec.size
    images = to_model_grid(planes, study.frame, size)
    mask_images = to_model_grid(masks, study.frame, size).clamp_(0, 1)
    n_slices = study.scaled.shape[0]
    volume_axis = 2 - study.orientation.axes[0]
    return SlicePairs(
        roi, images, mask_images, covered,
        np.array([study.orientation.volume_index(int(s), n_slices) for s in covered]),
        "ijk"[volume_axis],
    )


def lesion_crops(study: StudyView, roi: BoxROI, margin_px: int = 5) -> torch.Tensor:
    """[n, 1, S, S] crops of the ROI box (+ margin in view pixels) on each slice it covers (baselines)."""
    box = study.orientation.apply(roi.voxel_mask(study.volume))
    covered = np.flatnonzero(box.any(axis=(1, 2)))
    rows = np.flatnonzero(box.any(axis=(0, 2)))
    cols = np.flatnonzero(box.any(axis=(0, 1)))
    r0, r1 = max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, box.shape[1])
    c0, c1 = max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, box.shape[2])
    crops = torch.from_numpy(np.ascontiguousarray(study.scaled[covered, r0:r1, c0:c1]))[:, None]
    size = study.spec.size
    return F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False)
