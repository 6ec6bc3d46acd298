"""A study as the detector sees it: axial slices at a fixed pixel size, three neighbours per input.

The volume is only transposed and flipped into the patient plane closest to
axial (`imaging.planes.orientation_for`), never interpolated across slices, so each
input is one stored slice with the slices above and below as its other two
channels (the paper's 2.5D input).  In-plane, slices are resampled to
`pixel_mm` so that a vein has the same size in pixels whatever the scanner's
resolution, and padded to a multiple of the network's stride.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..imaging.planes import PLANES, Orientation, intensity_scale, orientation_for
from ..io.volume import Volume


@dataclass(frozen=True)
class DetectorInput:
    """How a study becomes detector input; stored in the model card."""

    pixel_mm: float = 1.5
    plane: str = "axial"
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    clip_max: float = 2.0
    stride: int = 16

    def to_dict(self) -> dict:
        out = asdict(self)
        out["channels"] = 3
        out["channel_order"] = "slice below, slice, slice above (view order); edges repeat the end slice"
        out["scaling"] = "per-study percentiles of body voxels: low -> 0, high -> 1, clipped to [0, clip_max]"
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorInput":
        if data.get("plane", "axial") not in PLANES:
            raise UserError(f"unknown detector plane '{data.get('plane')}' (use {', '.join(PLANES)})")
        known = {k: data[k] for k in ("pixel_mm", "plane", "low_percentile", "high_percentile", "clip_max", "stride")
                 if k in data}
        return cls(**known)


@dataclass
class DetectorView:
    """The resampled slice stack of one study and the maps between it and the voxel grid."""

    volume: Volume | None             # None in training caches, which keep only the resampled stack
    spec: DetectorInput
    orientation: Orientation
    planes: torch.Tensor            # [slices, rows, cols] float32, scaled, padded to the stride
    view_shape: tuple[int, int, int]  # (slices, rows, cols) of the oriented volume, before resampling
    small_shape: tuple[int, int]    # (rows, cols) after resampling, before padding

    @property
    def n_slices(self) -> int:
        return self.view_shape[0]

    @property
    def row_scale(self) -> float:
        """View rows per detector pixel."""
        return self.view_shape[1] / self.small_shape[0]

    @property
    def col_scale(self) -> float:
        return self.view_shape[2] / self.small_shape[1]

    def inputs(self, indices) -> torch.Tensor:
        """[n, 3, H, W] network input for the given slice indices."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        below = (idx - 1).clamp(min=0)
        above = (idx + 1).clamp(max=self.n_slices - 1)
        return torch.stack([self.planes[below], self.planes[idx], self.planes[above]], dim=1)

    def to_view_pixels(self, row0: int, row1: int, col0: int, col1: int) -> tuple[int, int, int, int]:
        """Detector-pixel box (inclusive) -> view-pixel box (inclusive) covering the same millimetres."""
        rows, cols = self.view_shape[1:]
        r0 = int(np.floor(row0 * self.row_scale))
        r1 = int(np.ceil((row1 + 1) * self.row_scale)) - 1
        c0 = int(np.floor(col0 * self.col_scale))
        c1 = int(np.ceil((col1 + 1) * self.col_scale)) - 1
        return max(r0, 0), min(r1, rows - 1), max(c0, 0), min(c1, cols - 1)

    def to_volume(self, small: torch.Tensor) -> np.ndarray:
        """[slices, H, W] detector-grid map -> float32 [k, j, i] array on the volume's grid."""
        h, w = self.small_shape
        rows, cols = self.view_shape[1:]
        maps = small[:, None, :h, :w].float()
        parts = [F.interpolate(maps[s:s + 64], size=(rows, cols), mode="bilinear", align_corners=False)[:, 0]
                 for s in range(0, maps.shape[0], 64)]
        return self.orientation.undo(torch.cat(parts).cpu().numpy().astype(np.float32))

    def spacing_ijk(self) -> np.ndarray:
        out = np.zeros(3)
        for d in range(3):
            out[2 - self.orientation.axes[d]] = self.orientation.spacing[d]
        return out

    def shape_ijk(self) -> np.ndarray:
        out = np.zeros(3, dtype=int)
        for d in range(3):
            out[2 - self.orientation.axes[d]] = self.view_shape[d]
        return out

    def view_extent_to_ijk(self, lo, hi) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive (slice, row, col) view extent -> inclusive (i, j, k) voxel extent."""
        lo_ijk = np.zeros(3, dtype=int)
        hi_ijk = np.zeros(3, dtype=int)
        for d in range(3):
            n = self.view_shape[d]
            a, b = int(lo[d]), int(hi[d])
            if self.orientation.flips[d]:
                a, b = n - 1 - b, n - 1 - a
            ijk_axis = 2 - self.orientation.axes[d]
            lo_ijk[ijk_axis], hi_ijk[ijk_axis] = a, b
        return lo_ijk, hi_ijk


def _resampled_size(rows: int, cols: int, row_mm: float, col_mm: float, pixel_mm: float) -> tuple[int, int]:
    return max(1, int(round(rows * row_mm / pixel_mm))), max(1, int(round(cols * col_mm / pixel_mm)))


def resample_planes(view: np.ndarray, size: tuple[int, int], stride: int, mode: str = "bilinear") -> torch.Tensor:
    """[slices, rows, cols] -> [slices, H, W] at `size`, zero-padded at the end to the stride."""
    planes = torch.from_numpy(np.ascontiguousarray(view, dtype=np.float32))
    parts = []
    for s in range(0, planes.shape[0], 64):      # chunks keep the peak memory of big studies low
        chunk = planes[s:s + 64, None]
        if mode == "area":
            parts.append(F.interpolate(chunk, size=size, mode="area")[:, 0])
        else:
            parts.append(F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)[:, 0])
    out = torch.cat(parts)
    pad_rows = -size[0] % stride
    pad_cols = -size[1] % stride
    return F.pad(out, (0, pad_cols, 0, pad_rows))


def prepare_view(volume: Volume, spec: DetectorInput) -> DetectorView:
    orientation = orientation_for(volume, spec.plane)
    low, high = intensity_scale(volume.array, spec.low_percentile, spec.high_percentile)
    view = orientation.apply(volume.array).astype(np.float32)
    scaled = np.clip((view - low) / (high - low), 0.0, spec.clip_max)
    size = _resampled_size(view.shape[1], view.shape[2], orientation.spacing[1], orientation.spacing[2], spec.pixel_mm)
    planes = resample_planes(scaled, size, spec.stride)
    return DetectorView(volume, spec, orientation, planes, tuple(view.shape), size)


def resample_mask(view: DetectorView, mask: np.ndarray) -> torch.Tensor:
    """A [k, j, i] mask on the volume grid -> [slices, H, W] fraction covered, on the detector grid."""
    oriented = view.orientation.apply(mask.astype(np.float32))
    return resample_planes(oriented, view.small_shape, view.spec.stride, mode="area")
