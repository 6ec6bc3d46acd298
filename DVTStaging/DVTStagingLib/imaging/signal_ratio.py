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


THROMBUS_PERCENTILE = 75   # of the box's central half: in black-blood MR the patent lumen and flow voids there are dark
MAJOR_PEAK = 0.3           # a histogram peak at least this share of the highest counts as a tissue


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that best splits `values` into two classes (Otsu 1979: maximal between-class variance)."""
    counts, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    below = np.cumsum(counts)
    above = below[-1] - below
    mass = np.cumsum(counts * centres)
    mean_below = mass / np.maximum(below, 1)
    mean_above = (mass[-1] - mass) / np.maximum(above, 1)
    return float(centres[int(np.argmax(below * above * (mean_below - mean_above) ** 2))])


def muscle_level(slab: np.ndarray, around: np.ndarray) -> float | None:
    """The muscle signal among the voxels `around` an ROI, or None when too few are body tissue.

    On T1 black-blood MR, fat (subcutaneous, intermuscular, marrow) is brighter than muscle, and air,
    cortical bone and flow voids are darker.  Muscle is therefore the darkest major peak of the tissue's
    histogram, not its highest one: a box near the skin or between fat planes can have more fat than muscle
    around it.  Air is left out first by an Otsu threshold on the slab's log intensities (air is most of a
    thigh study's voxels, and its noise floor is a peak of its own), at most a tenth of the brightest tissue.
    """
    floor = max(float(slab.min()), 0.0)
    body = slab[slab > floor].ravel()
    if body.size < 100:
        return None
    log_body = np.log(body[:: max(1, body.size // 200_000)].astype(np.float64) - floor + 1.0)
    # Where the air is stored as zeros there is no air class left, and Otsu would split muscle from fat: air
    # is never brighter than a tenth of the brightest tissue.
    air = min(otsu_threshold(log_body), float(np.log(0.1 * np.exp(np.percentile(log_body, 99.5)) + 0.9)))
    tissue = np.log(around[around > floor].astype(np.float64) - floor + 1.0)
    tissue = tissue[tissue > air]
    if tissue.size < 50:
        return None
    counts, edges = np.histogram(tissue, bins=64, range=tuple(np.percentile(tissue, [1, 99])))
    counts = np.convolve(counts, np.array([1, 2, 3, 2, 1]) / 9.0, mode="same")
    peak = next(i for i in range(len(counts)) if counts[i] >= MAJOR_PEAK * counts.max()
                and counts[i] >= counts[max(i - 1, 0)] and counts[i] >= counts[min(i + 1, len(counts) - 1)])
    level = float(np.exp(0.5 * (edges[peak] + edges[peak + 1])) - 1.0 + floor)
    return level if level > 0 else None


SEGMENT_MIN_VOXELS = 10    # fewer thrombus pixels of a segment inside a box: the box's own estimate is used
SEGMENT_QUANTILE = 0.75    # of a detector segment's pixels: partial volume with the dark lumen and wall lowers the rest


def segment_in_box(box: np.ndarray, thrombus: np.ndarray | None) -> bool:
    """Whether a thrombus segment has enough pixels inside the box to give the ratio's thrombus signal."""
    return thrombus is not None and int(np.count_nonzero(thrombus[box])) >= SEGMENT_MIN_VOXELS


def _box_rows_cols(box: np.ndarray, slices: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(box[slices].any(axis=(0, 2)))
    cols = np.flatnonzero(box[slices].any(axis=(0, 1)))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def muscle_around_box(image: np.ndarray, box: np.ndarray, spacing_row_col: tuple[float, float]) -> float | None:
    """`muscle_level` of a ring 5-30 mm around the box on the box's slices (view-ordered [slice, row, col])."""
    slices = np.flatnonzero(box.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    img = image[slices]
    r0, r1, c0, c1 = _box_rows_cols(box, slices)

    def grown(mm):
        dr, dc = int(round(mm / spacing_row_col[0])), int(round(mm / spacing_row_col[1]))
        m = np.zeros(img.shape[1:], bool)
        m[max(r0 - dr, 0): r1 + dr, max(c0 - dc, 0): c1 + dc] = True
        return m

    return muscle_level(img, img[:, grown(30.0) & ~grown(5.0)])


def estimated_ratio_in_box(image: np.ndarray, box: np.ndarray, spacing_row_col: tuple[float, float],
                           thrombus: np.ndarray | None = None, signal: float | None = None) -> float | None:
    """Thrombus/muscle ratio of an ROI box, from the best thrombus signal at hand.

    `image`, `box` and `thrombus` (a segment such as the detector's thrombus
    pixels, optional) are view-ordered [slice, row, col].  Thrombus: `signal`
    where a caller measured it (the content check's thrombus pixels); else the
    segment's pixels inside the box where it has at least SEGMENT_MIN_VOXELS
    (`segment_in_box`): their SEGMENT_QUANTILE; else, on each of the box's slices,
    the upper quartile of its central half in-plane (the thrombus is the
    brighter content of a black-blood vein: the patent lumen, flow voids and
    a small thrombus's surroundings fill the rest), the median over slices.
    Muscle: `muscle_around_box`.  Checked against the ratio each phantom style
    drew (docs/results/robustness-bundled.md).
    """
    slices = np.flatnonzero(box.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    muscle = muscle_around_box(image, box, spacing_row_col)
    if muscle is None:
        return None
    if signal is None and segment_in_box(box, thrombus):
        signal = float(np.quantile(image[(thrombus != 0) & box], SEGMENT_QUANTILE))
    if signal is None:
        r0, r1, c0, c1 = _box_rows_cols(box, slices)
        qr, qc = max((r1 - r0) // 4, 0), max((c1 - c0) // 4, 0)
        core = image[slices, r0 + qr: r1 - qr, c0 + qc: c1 - qc].astype(np.float32)
        if core.size == 0:
            return None
        signal = float(np.median(np.percentile(core.reshape(len(core), -1), THROMBUS_PERCENTILE, axis=1)))
    return float(signal / muscle)
