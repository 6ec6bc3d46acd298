"""Slice pairs for VDPF: the whole slice (I_G) and the same slice outside the ROI box zeroed (I_L).

Beyond the paper, the local image can instead be a zoomed view: a square
window around the box (InputSpec.zoom_context x its larger side, at least
zoom_min_mm) resampled to the input size, so the lesion is seen at full
resolution while I_G keeps the context (InputSpec.local_view = "zoom").

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

from dataclasses import dataclass, field

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
    intensity: tuple[float, float] = (0.0, 1.0)   # the (low, high) raw intensities scaled to 0 and 1
    _boxes: dict = field(default_factory=dict, repr=False, compare=False)

    def box(self, roi: BoxROI) -> np.ndarray:
        """The ROI's voxel mask in the view order, read-only; made once per ROI (the answer, its ratio and the
        report all need it, and each took a few milliseconds of a warm Stage click)."""
        found = self._boxes.get(id(roi))
        if found is None or found[0] is not roi:
            mask = self.orientation.apply(roi.voxel_mask(self.volume))
            mask.flags.writeable = False
            found = self._boxes[id(roi)] = (roi, mask)
        return found[1]


def prepare_study(volume: Volume, spec: InputSpec) -> StudyView:
    orientation = orientation_for(volume, spec.plane)
    low, high = intensity_scale(volume.array, spec.low_percentile, spec.high_percentile)
    view = orientation.apply(volume.array).astype(np.float32)
    scaled = np.clip((view - low) / (high - low), 0.0, spec.clip_max)
    _, rows, cols = scaled.shape
    frame = plane_frame(rows, cols, orientation.spacing[1], orientation.spacing[2])
    return StudyView(volume, spec, orientation, np.ascontiguousarray(scaled), frame, (float(low), float(high)))


def _sampling_grid(rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """grid_sample's [1, H, W, 2] grid of (x, y) from normalised row and column positions."""
    gr, gc = torch.meshgrid(torch.from_numpy(rows).float(), torch.from_numpy(cols).float(), indexing="ij")
    return torch.stack([gc, gr], dim=-1)[None]


@dataclass(frozen=True)
class ZoomWindow:
    """A square window (in millimetres) of the view slice, in continuous view-pixel coordinates.

    Pixel (r, c) covers [r, r+1) x [c, c+1); the window spans centre +- half along rows and columns.
    """

    center: tuple[float, float]
    half: tuple[float, float]     # half side in view pixels along (rows, cols)

    def crop(self, planes: torch.Tensor, size: int) -> torch.Tensor:
        """[n, rows, cols] view slices -> [n, 1, size, size] window images (zeros outside the slice)."""
        n, rows, cols = planes.shape
        steps = (np.arange(size) + 0.5) / size * 2 - 1                 # -1..1 across the window
        r = self.center[0] + steps * self.half[0]
        c = self.center[1] + steps * self.half[1]
        grid = _sampling_grid(2 * r / rows - 1, 2 * c / cols - 1).expand(n, -1, -1, -1)
        return F.grid_sample(planes[:, None].float(), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)

    def to_view(self, square: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """[n, S, S] maps on the window grid -> [n, rows, cols] view-slice maps (zero outside the window)."""
        n = square.shape[0]
        r = ((np.arange(rows) + 0.5) - self.center[0]) / self.half[0]     # window-normalised, -1..1 inside
        c = ((np.arange(cols) + 0.5) - self.center[1]) / self.half[1]
        grid = _sampling_grid(r, c).expand(n, -1, -1, -1)
        return F.grid_sample(square[:, None].float(), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)[:, 0]


def zoom_window(box: np.ndarray, spacing_rc: tuple[float, float], spec: InputSpec) -> ZoomWindow:
    """The window around a [slice, row, col] box mask: its larger side x zoom_context, >= zoom_min_mm."""
    rows = np.flatnonzero(box.any(axis=(0, 2)))
    cols = np.flatnonzero(box.any(axis=(0, 1)))
    height_mm = (rows[-1] - rows[0] + 1) * spacing_rc[0]
    width_mm = (cols[-1] - cols[0] + 1) * spacing_rc[1]
    side_mm = max(max(height_mm, width_mm) * spec.zoom_context, spec.zoom_min_mm)
    return ZoomWindow(((rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2),
                      (side_mm / 2 / spacing_rc[0], side_mm / 2 / spacing_rc[1]))


@dataclass
class SlicePairs:
    """Model inputs for one ROI: I_G, the box mask, I_L and where each slice came from."""

    roi: BoxROI
    global_images: torch.Tensor | None   # [n, 1, S, S] (None: made by the caller, see slice_pairs)
    box_masks: torch.Tensor | None       # [n, 1, S, S] in [0, 1] (None: not needed by the zoomed view)
    view_slices: np.ndarray       # slice index in the view order
    volume_slices: np.ndarray     # index along the volume's own axis (see `axis`)
    axis: str                     # "i", "j" or "k": the volume axis the slices cut across
    zoom: ZoomWindow | None = None          # set for the zoomed local view
    zoomed_images: torch.Tensor | None = None

    @property
    def local_images(self) -> torch.Tensor:
        """I_L: the paper's masked slice, or the zoomed window when the model was trained on that."""
        return self.zoomed_images if self.zoomed_images is not None else self.global_images * self.box_masks

    def __len__(self) -> int:
        return len(self.view_slices)


def evenly_spaced(n: int, at_most: int) -> np.ndarray:
    """Indices of at most `at_most` evenly spaced items of `n` (all of them when n <= at_most), first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(n, at_most)).round().astype(int))


def roi_box_in_view(study: StudyView, roi: BoxROI) -> tuple[np.ndarray, np.ndarray]:
    """The ROI's [slice, row, col] voxel mask in the view order, and the view slices it covers."""
    box = study.box(roi)
    covered = np.flatnonzero(box.any(axis=(1, 2)))
    if covered.size == 0:
        raise UserError(f"ROI '{roi.name}' covers no voxel of the volume")
    return box, covered


def slice_pairs(study: StudyView, roi: BoxROI, images: bool = True) -> SlicePairs:
    """Every view slice the ROI covers, as model-ready global images, box masks and local images.

    images=False: only where the slices are and what the local view needs (the zoom window, or the box masks),
    for a caller that builds the images from the view slices itself (`evidence.model_inputs_from_planes`)."""
    box, covered = roi_box_in_view(study, roi)
    size = study.spec.size
    window = zoomed = global_images = mask_images = None
    if study.spec.local_view == "zoom":
        window = zoom_window(box, study.orientation.spacing[1:], study.spec)
    if images or window is None:
        masks = torch.from_numpy(np.ascontiguousarray(box[covered]).astype(np.float32))
        mask_images = to_model_grid(masks, study.frame, size).clamp_(0, 1)
    if images:
        planes = torch.from_numpy(study.scaled[covered])
        global_images = to_model_grid(planes, study.frame, size)
        zoomed = window.crop(planes, size) if window is not None else None
    n_slices = study.scaled.shape[0]
    volume_slices = n_slices - 1 - covered if study.orientation.flips[0] else covered.copy()   # volume_index
    return SlicePairs(roi, global_images, mask_images, covered, volume_slices,
                      "ijk"[2 - study.orientation.axes[0]], window, zoomed)


def lesion_crops(study: StudyView, roi: BoxROI, margin_px: int = 5) -> torch.Tensor:
    """[n, 1, S, S] crops of the ROI box (+ margin in view pixels) on each slice it covers (baselines)."""
    box, covered = roi_box_in_view(study, roi)
    rows = np.flatnonzero(box.any(axis=(0, 2)))
    cols = np.flatnonzero(box.any(axis=(0, 1)))
    r0, r1 = max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, box.shape[1])
    c0, c1 = max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, box.shape[2])
    crops = torch.from_numpy(np.ascontiguousarray(study.scaled[covered, r0:r1, c0:c1]))[:, None]
    size = study.spec.size
    return F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False)
