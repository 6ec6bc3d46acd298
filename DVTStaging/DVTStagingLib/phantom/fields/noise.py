"""Random fields for the `fields` style: white noise low-pass filtered by Gaussians, never a sum of waves.

Every texture, irregular outline and smooth modulation of this style comes from here, so no drawn
structure is periodic: the power spectrum of a filtered white noise is a smooth bump with no peak.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaussian_field(rng: np.random.Generator, shape, sigma, mode: str = "reflect") -> np.ndarray:
    """White noise filtered by a Gaussian of `sigma` pixels (scalar or per axis); zero mean, unit SD, float32.

    A wide filter runs on a coarser grid (the field is smooth there) and is interpolated back.
    """
    shape = tuple(int(n) for n in shape)
    sigma = np.broadcast_to(np.asarray(sigma, float), (len(shape),))
    step = np.maximum(np.floor(sigma / 2.5), 1).astype(int)
    if mode != "wrap" and np.any(step > 1):
        coarse_shape = [int(np.ceil((n - 1) / s)) + 1 for n, s in zip(shape, step)]
        coarse = gaussian_field(rng, coarse_shape, sigma / step, mode)
        return upsample(coarse, [(c - 1) * s + 1 for c, s in zip(coarse_shape, step)])[tuple(slice(0, n) for n in shape)]
    white = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(white, sigma, mode=mode, truncate=3.0)
    field -= field.mean()
    sd = float(field.std())
    return field / sd if sd > 0 else field


def multiscale_field(rng: np.random.Generator, shape, sigmas, weights) -> np.ndarray:
    """Sum of independent filtered noises at several scales (weights relative), rescaled to unit SD."""
    total = np.zeros(tuple(int(n) for n in shape), np.float32)
    for sigma, weight in zip(sigmas, weights):
        total += np.float32(weight) * gaussian_field(rng, shape, sigma)
    sd = float(total.std())
    return total / sd if sd > 0 else total


def circular_profile(rng: np.random.Generator, n: int, corr_deg: float) -> np.ndarray:
    """A smooth random function of the angle (n samples round the circle), zero mean, unit SD.

    Filtered noise wrapped round the circle: irregular outlines and thicknesses, no fixed number of lobes.
    """
    sigma = corr_deg / 360.0 * n
    return gaussian_field(rng, (n,), sigma, mode="wrap")


def smooth_curve(rng: np.random.Generator, n: int, corr_samples: float) -> np.ndarray:
    """A smooth random 1-D function (n samples), zero mean, unit SD: wandering paths along a vessel."""
    return gaussian_field(rng, (n + int(6 * corr_samples),), corr_samples)[int(3 * corr_samples):][:n]


def reticular(field: np.ndarray, width: float) -> np.ndarray:
    """Irregular network of thin lines along the zero crossings of a smooth random field, in [0, 1].

    `width` is in units of the field's SD; the cells of the network have the field's correlation size
    and random shapes (a random nodal pattern, not a grid).
    """
    return np.exp(-(field / np.float32(width)) ** 2)


def upsample(coarse: np.ndarray, shape) -> np.ndarray:
    """Trilinear (or bilinear) upsampling of a coarse field to `shape`, corners aligned, float32."""
    shape = tuple(int(n) for n in shape)
    out = ndimage.zoom(coarse.astype(np.float32), [n / c for n, c in zip(shape, coarse.shape)], order=1,
                       grid_mode=False, mode="nearest")
    if out.shape != shape:  # rounding of the zoom factor: pad or crop by at most one sample
        pad = [(0, max(n - o, 0)) for n, o in zip(shape, out.shape)]
        out = np.pad(out, pad, mode="edge")[tuple(slice(0, n) for n in shape)]
    return out


class AngleTable:
    """A smooth random function of (angle round a vessel, z), read with bilinear interpolation."""

    def __init__(self, rng: np.random.Generator, z0: float, z1: float, dz: float = 2.0, n_angles: int = 64,
                 corr_deg: float = 40.0, corr_mm: float = 12.0):
        n_z = int(np.ceil((z1 - z0) / dz)) + 2
        field = ndimage.gaussian_filter(rng.standard_normal((n_angles, n_z + 20), dtype=np.float32),
                                        (corr_deg / 360.0 * n_angles, corr_mm / dz), mode=("wrap", "reflect"))[:, 10:-10]
        self.values = ((field - field.mean()) / max(float(field.std()), 1e-6)).astype(np.float32)
        self.z0, self.dz, self.n_angles = float(z0), float(dz), n_angles

    def sample(self, angle: np.ndarray, z: np.ndarray) -> np.ndarray:
        a = (np.asarray(angle, np.float32) / np.float32(2 * np.pi)) % 1.0 * self.n_angles
        b = np.clip((np.asarray(z, np.float32) - np.float32(self.z0)) / np.float32(self.dz), 0, self.values.shape[1] - 1.001)
        a0 = a.astype(np.int64)
        b0 = b.astype(np.int64)
        fa, fb = a - a0, b - b0
        a1 = (a0 + 1) % self.n_angles
        v = self.values
        top = v[a0 % self.n_angles, b0] * (1 - fa) + v[a1, b0] * fa
        bot = v[a0 % self.n_angles, b0 + 1] * (1 - fa) + v[a1, b0 + 1] * fa
        return top * (1 - fb) + bot * fb


class Table3D:
    """A filtered-noise volume on a regular grid, read by nearest sample (fast for many scattered points)."""

    def __init__(self, values: np.ndarray, origin, step):
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.origin = np.asarray(origin, float)
        self.step = np.asarray(step, float)
        self._flat = self.values.ravel()

    def sample(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        shape = self.values.shape
        ia = np.clip(np.rint((a - self.origin[0]) / self.step[0]).astype(np.int64), 0, shape[0] - 1)
        ib = np.clip(np.rint((b - self.origin[1]) / self.step[1]).astype(np.int64), 0, shape[1] - 1)
        ic = np.clip(np.rint((c - self.origin[2]) / self.step[2]).astype(np.int64), 0, shape[2] - 1)
        return self._flat[(ia * shape[1] + ib) * shape[2] + ic]
