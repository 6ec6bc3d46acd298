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


def estimated_ratio_in_box(image: np.ndarray, box: np.ndarray, spacing_row_col: tuple[float, float]) -> float | None:
    """Thrombus/muscle ratio from an ROI box alone, when no thrombus segment exists.

    `image` and `box` are view-ordered [slice, row, col].  Thrombus: the median
    of the box's central half in-plane.  Muscle: the most common intensity in a
    ring 5-30 mm around the box on the same slices (muscle dominates the thigh
    around the femoral vessels; fat and vessels are the tails).
    """
    slices = np.flatnonzero(box.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    img = image[slices].astype(np.float32)
    rows = np.flatnonzero(box[slices].any(axis=(0, 2)))
    cols = np.flatnonzero(box[slices].any(axis=(0, 1)))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    qr, qc = max((r1 - r0) // 4, 0), max((c1 - c0) // 4, 0)
    core = img[:, r0 + qr: r1 - qr, c0 + qc: c1 - qc]
    if core.size == 0:
        return None

    def grown(mm):
        dr, dc = int(round(mm / spacing_row_col[0])), int(round(mm / spacing_row_col[1]))
        m = np.zeros(img.shape[1:], bool)
        m[max(r0 - dr, 0): r1 + dr, max(c0 - dc, 0): c1 + dc] = True
        return m

    ring = grown(30.0) & ~grown(5.0)
    values = img[:, ring].ravel()
    values = values[values > np.percentile(img, 20)]        # leave out air and background
    if values.size < 50:
        return None
    lo, hi = np.percentile(values, [2, 98])
    counts, edges = np.histogram(values, bins=48, range=(lo, hi))
    peak = int(np.argmax(counts))
    muscle = 0.5 * (edges[peak] + edges[peak + 1])
    if muscle <= 0:
        return None
    return float(np.median(core) / muscle)
