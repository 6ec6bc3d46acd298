"""Thrombus-to-muscle signal ratio, the number radiologists read off BTI.

The ratio is the median thrombus signal over the median signal of muscle
next to it (same slices, within a margin of the thrombus), which cancels a
smooth bias field and the scanner's gain.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _erode_in_plane(mask: np.ndarray) -> np.ndarray:
    """Drop the partial-volume rim of a mask; keep it when the mask is too thin for that."""
    eroded = ndimage.binary_erosion(mask, structure=np.ones((1, 3, 3), bool))
    return eroded if eroded.sum() >= max(8, 0.2 * mask.sum()) else mask


def thrombus_muscle_ratio(image: np.ndarray, thrombus: np.ndarray, muscle: np.ndarray,
                          margin_voxels: int = 30) -> float | None:
    """Median thrombus / median nearby muscle, or None when either is absent."""
    if not thrombus.any():
        return None
    k, j, i = np.nonzero(thrombus)
    lo = np.maximum([k.min(), j.min() - margin_voxels, i.min() - margin_voxels], 0)
    hi = np.minimum([k.max() + 1, j.max() + 1 + margin_voxels, i.max() + 1 + margin_voxels], image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    near_muscle = _erode_in_plane(muscle[box])
    if near_muscle.sum() < 20:
        return None
    core = _erode_in_plane(thrombus[box])
    values = image[box].astype(np.float64)
    muscle_level = np.median(values[near_muscle])
    if muscle_level <= 0:
        return None
    return float(np.median(values[core]) / muscle_level)
