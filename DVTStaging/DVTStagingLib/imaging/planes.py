"""Patient planes of a volume: which array axes and flips show it axially, coronally or sagittally.

Slices are always stored planes of the volume: the voxel array is only
transposed and flipped, never interpolated across slices.  In-plane the
image is shown the radiological way (patient right on the image's left).
Shared by staging and detection; torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from ..core.errors import UserError
from ..io.volume import Volume
from .percentiles import percentiles_above_floor

# For each plane: the RAS axis slices are stacked along, and the RAS
# directions image rows and columns increase toward (rows down, cols right).
PLANES = {
    "axial": {"slice": (2, +1), "row": (1, -1), "col": (0, -1)},      # rows anterior->posterior, cols right->left
    "coronal": {"slice": (1, +1), "row": (2, -1), "col": (0, -1)},    # rows superior->inferior
    "sagittal": {"slice": (0, +1), "row": (2, -1), "col": (1, +1)},   # rows superior->inferior, cols posterior->anterior
}


@dataclass(frozen=True)
class Orientation:
    """Array axes (of the [k, j, i] array) and flips that put a volume into a plane's view."""

    axes: tuple[int, int, int]      # numpy axes that become (slice, row, col)
    flips: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]   # mm along (slice, row, col)

    def apply(self, array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, self.axes)
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis)
        return out

    def undo(self, viewed: np.ndarray) -> np.ndarray:
        out = viewed
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis)
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.axes)))

    def array_index(self, view_index, view_shape) -> tuple[int, int, int]:
        """The [k, j, i] array index of a voxel at `view_index` of the view (the inverse of `apply`)."""
        unflipped = [view_shape[a] - 1 - v if flip else v for a, (v, flip) in enumerate(zip(view_index, self.flips))]
        index = [0, 0, 0]
        for view_axis, array_axis in enumerate(self.axes):
            index[array_axis] = int(unflipped[view_axis])
        return tuple(index)

    def volume_index(self, view_slice: int, n_slices: int) -> int:
        """Index along the volume's own axis of a view slice."""
        return n_slices - 1 - view_slice if self.flips[0] else view_slice


def orientation_for(volume: Volume, plane: str) -> Orientation:
    """The transpose and flips of the [k, j, i] array closest to the plane's view."""
    target = PLANES[plane]
    d = volume.direction_ras                      # columns: RAS directions of i, j, k
    roles = (target["slice"], target["row"], target["col"])
    # Voxel axis (0=i, 1=j, 2=k) for each role: the assignment with the largest total alignment.
    best = max(permutations(range(3)), key=lambda p: sum(abs(d[roles[r][0], p[r]]) for r in range(3)))
    axes = tuple(2 - a for a in best)             # ijk axis a is numpy axis 2 - a
    flips = tuple(bool(np.sign(d[roles[r][0], best[r]]) != roles[r][1]) for r in range(3))
    spacing = tuple(float(volume.spacing[a]) for a in best)
    return Orientation(axes, flips, spacing)


def intensity_scale(array: np.ndarray, low_percentile: float, high_percentile: float) -> tuple[float, float]:
    """Per-study (low, high) intensities from percentiles of the non-background voxels."""
    sample = array.ravel()
    if sample.size > 2_000_000:                  # a strided sample is exact enough for percentiles
        sample = sample[:: sample.size // 2_000_000 + 1]
    low, high = percentiles_above_floor(sample, [low_percentile, high_percentile], min_body=100, dtype=np.float32)
    if not high > low:
        raise UserError("the image has no usable intensity range (almost constant)")
    return float(low), float(high)
