"""The scanner model: global gain, smooth bias field and Rician noise.

Applied after rendering, so no stage information can leak into absolute
intensity: the same thrombus lands anywhere in the stored value range.
"""

from __future__ import annotations

import numpy as np

from .spec import AcquisitionSpec


def bias_field(shape_kji, coefficients, amplitude: float = 0.12) -> np.ndarray:
    """exp of a random quadratic polynomial over normalised voxel coordinates."""
    nk, nj, ni = shape_kji
    ui = np.linspace(-1, 1, ni, dtype=np.float32)[None, None, :]
    uj = np.linspace(-1, 1, nj, dtype=np.float32)[None, :, None]
    uk = np.linspace(-1, 1, nk, dtype=np.float32)[:, None, None]
    c = np.asarray(coefficients, dtype=np.float32) * np.float32(amplitude)
    log_bias = (c[0] * ui + c[1] * uj + c[2] * uk + c[3] * ui * ui + c[4] * uj * uj + c[5] * uk * uk
                + c[6] * ui * uj + c[7] * ui * uk + c[8] * uj * uk)
    return np.exp(log_bias).astype(np.float32)


def acquire(intensity: np.ndarray, acq: AcquisitionSpec, rng: np.random.Generator) -> np.ndarray:
    """Relative intensity (muscle = 1) to stored int16 values as a scanner would write them."""
    signal = intensity * bias_field(intensity.shape, acq.bias) * np.float32(acq.gain)
    sigma = np.float32(acq.noise * acq.gain)
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    magnitude = np.sqrt(real * real + imag * imag)
    return np.clip(np.rint(magnitude), 0, 32767).astype(np.int16)
