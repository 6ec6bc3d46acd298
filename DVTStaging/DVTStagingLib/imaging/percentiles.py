"""Percentiles of 8- and 16-bit integer images from their histogram: the very numbers np.percentile gives
(its default linear method), without sorting the voxels.

A Stage click takes percentiles of a whole study more than once (the intensity scale, the report's display
window), and np.percentile partitions millions of voxels each time (~45 ms for a 3.7-million-voxel study
on one core) where a histogram takes ~10 ms.  MR studies are stored as 16-bit integers almost always;
anything else (floats, 32-bit integers) goes to np.percentile itself.
"""

from __future__ import annotations

import numpy as np

BACKGROUND_PERCENTILE = 5     # the voxels at or below it are the background (air)


class IntegerHistogram:
    """Counts of each value of an 8/16-bit integer array, enough to answer np.percentile exactly."""

    def __init__(self, low: int, counts: np.ndarray):
        self.low = low
        self.counts = counts
        self._cumulative = np.cumsum(counts)

    @classmethod
    def of(cls, values: np.ndarray) -> IntegerHistogram | None:
        """The histogram of `values`, or None where it does not apply (not 8/16-bit integers, or empty)."""
        values = np.asarray(values)
        if values.dtype.kind not in "iu" or values.dtype.itemsize > 2 or values.size == 0:
            return None
        flat = values.ravel()
        low = int(flat.min())
        return cls(low, np.bincount(flat.astype(np.int32) - low))

    @property
    def size(self) -> int:
        return int(self._cumulative[-1]) if len(self._cumulative) else 0

    def above(self, threshold) -> IntegerHistogram:
        """The histogram of the values > threshold (as values[values > threshold] would hold)."""
        keep = np.arange(self.low, self.low + len(self.counts)) > threshold
        return IntegerHistogram(self.low, np.where(keep, self.counts, 0))

    def _value(self, rank: int) -> int:
        """The rank-th smallest value (0-based; -1: the largest)."""
        if rank < 0:
            rank += self.size
        return self.low + int(np.searchsorted(self._cumulative, rank, side="right"))

    def percentile(self, q, dtype):
        """np.percentile(a, q) for an array `a` of `dtype` holding these values (the dtype matters: numpy
        interpolates a float32 array's single percentile in float32)."""
        weak = type(q) in (int, float)      # numpy's own rule: a Python number keeps the array's precision
        quantiles = np.true_divide(q, 100)
        virtual = (self.size - 1) * quantiles
        previous = np.floor(virtual)
        results = []
        for v, p in zip(np.atleast_1d(virtual), np.atleast_1d(previous)):
            if v >= self.size - 1:          # numpy's bounds: the largest value, or the smallest
                p_rank = n_rank = -1
            elif v < 0:
                p_rank = n_rank = 0
            else:
                p_rank, n_rank = int(p), int(p) + 1
            gamma = v - p_rank              # numpy's weight: from the clipped index, as here
            a = np.dtype(dtype).type(self._value(p_rank))
            b = np.dtype(dtype).type(self._value(n_rank))
            results.append(_lerp(a, b, float(gamma) if weak else np.float64(gamma)))
        if np.ndim(q) == 0:
            return results[0]
        return np.array(results).reshape(np.shape(q))


def _lerp(a, b, t):
    """numpy's interpolation between two neighbouring values, in the same operations (so the same rounding)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def percentiles_above_floor(values: np.ndarray, q, min_body: int = 1, dtype=None):
    """np.percentile(body, q), where body = the values of an array of `dtype` (default: their own) above its 5th
    percentile (the background), or all of them when fewer than `min_body` are; from a histogram where one
    applies."""
    dtype = np.dtype(values.dtype if dtype is None else dtype)
    histogram = IntegerHistogram.of(values)
    if histogram is not None:
        body = histogram.above(histogram.percentile(BACKGROUND_PERCENTILE, dtype))
        return (body if body.size >= min_body else histogram).percentile(q, dtype)
    array = values.astype(dtype, copy=False)
    body = array[array > np.percentile(array, BACKGROUND_PERCENTILE)] if array.size else array
    return np.percentile(body if body.size >= min_body else array, q)
