"""Smooth Gaussian random fields on a study's voxel grid: texture without a period.

Tissue never carries a periodic pattern (no scanner shows one, and a network learns one at once): a texture
drawn from white noise low-pass filtered to a correlation length in millimetres has none. The noise lives on a
coarse lattice (half the correlation length per step) over the study's voxel grid and is interpolated linearly
to the voxel centres, so a field costs little, and blocks of the grid can be evaluated on their own with the
same values as the whole. Filtering with a Gaussian whose width is given in millimetres per axis makes the
correlation isotropic in the patient, whatever the voxel spacing or orientation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

F = np.float32


class SmoothField:
    """A zero-mean, unit-sd random field with correlation length `corr_mm` over a [k, j, i] grid."""

    def __init__(self, rng: np.random.Generator, shape_kji, spacing_kji, corr_mm: float):
        self.shape = tuple(int(s) for s in shape_kji)
        spacing = np.asarray(spacing_kji, dtype=float)
        step_mm = max(float(corr_mm) / 2.0, 1e-3)
        # Lattice step in voxels per axis (never finer than a voxel: nothing finer can be seen).
        self.step = np.maximum(step_mm / spacing, 1.0)
        coarse_shape = tuple(int(np.ceil(n / s)) + 4 for n, s in zip(self.shape, self.step))
        noise = rng.standard_normal(coarse_shape).astype(F)
        sigma = [corr_mm / 2.0 / (s * sp) for s, sp in zip(self.step, spacing)]   # in lattice steps
        smooth = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap")
        self.coarse = (smooth - smooth.mean()) / max(float(smooth.std()), 1e-6)

    def _axis_weights(self, axis: int, index: slice):
        """Lattice neighbours and weights of the voxel centres `index` along one axis."""
        n = np.arange(index.start, index.stop, dtype=float)
        pos = (n + 0.5) / self.step[axis] + 1.0      # lattice coordinate (one cell of margin)
        lo = np.floor(pos).astype(int)
        return lo, (pos - lo).astype(F)

    def block(self, block=None) -> np.ndarray:
        """Values at the voxels of `block` ([k, j, i] slices; the whole grid when None)."""
        if block is None:
            block = tuple(slice(0, n) for n in self.shape)
        out = self.coarse
        for axis in range(3):
            lo, w = self._axis_weights(axis, block[axis])
            shape = [1, 1, 1]
            shape[axis] = -1
            w = w.reshape(shape)
            out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, lo + 1, axis=axis) * w
        return out.astype(F, copy=False)
