"""2D views of a volume's own slices, oriented the way radiologists read them.

Slices are taken along the volume's k axis (the acquired stack).  Rows and
columns are flipped so that, whatever the direction matrix, the patient's
right is on the left of the picture and anterior (axial) or superior
(coronal/sagittal) is at the top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.volume import Volume
from .percentiles import percentiles_above_floor


@dataclass
class SliceView:
    image: np.ndarray       # [row, col]
    flip_rows: bool
    flip_cols: bool
    aspect: float           # row spacing / column spacing, for imshow(aspect=...)

    def to_display(self, i, j):
        """Display (col, row) of voxel indices (i, j)."""
        rows, cols = self.image.shape
        col = cols - 1 - np.asarray(i, float) if self.flip_cols else np.asarray(i, float)
        row = rows - 1 - np.asarray(j, float) if self.flip_rows else np.asarray(j, float)
        return col, row

    def rectangle(self, lo_ij, hi_ij):
        """(col, row, width, height) of the voxel block lo..hi (inclusive) in display pixels."""
        c0, r0 = self.to_display(lo_ij[0], lo_ij[1])
        c1, r1 = self.to_display(hi_ij[0], hi_ij[1])
        col, row = min(c0, c1) - 0.5, min(r0, r1) - 0.5
        return col, row, abs(c1 - c0) + 1, abs(r1 - r0) + 1


def slice_view(volume: Volume, k: int, array: np.ndarray | None = None) -> SliceView:
    data = (volume.array if array is None else array)[k]
    d = volume.direction_ras
    col_axis, row_axis = d[:, 0], d[:, 1]
    # Columns run toward the patient's left (RAS -x) when the column axis is mostly left-right.
    flip_cols = bool(col_axis[0] > 0) if abs(col_axis[0]) >= max(abs(col_axis[1]), abs(col_axis[2])) else False
    main = int(np.argmax(np.abs(row_axis)))
    # Rows run downward: toward posterior (-y) or inferior (-z); a left-right row axis goes to the left.
    flip_rows = bool(row_axis[main] > 0) if main in (1, 2) else bool(row_axis[0] > 0)
    image = data
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return SliceView(np.ascontiguousarray(image), flip_rows, flip_cols, float(volume.spacing[1] / volume.spacing[0]))


def display_window(values: np.ndarray, low: float = 1.0, high: float = 99.5) -> tuple[float, float]:
    """Percentile window of the non-background voxels."""
    lo, hi = percentiles_above_floor(values, [low, high])
    return float(lo), float(hi if hi > lo else lo + 1)
