"""Is a tissue texture periodic?  A spectral check any phantom style can be held to.

No scanner shows a tissue as a sum of plane waves.  A periodic texture (a checkerboard, stripes, a
product of cosines) puts its power into a few isolated spatial frequencies; filtered noise, anatomy
and MR noise spread it smoothly over all directions at a given frequency.  `periodic_peak_ratio`
measures the strongest isolated peak of the 2-D power spectrum of the texture inside a mask, relative
to the power of the other frequencies of the same radius (its ring) and of the same direction (at
0.6-1.6x the radius).  Irregular and oriented textures stay near 2-5; a visible periodic pattern
gives tens to thousands.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.segmentation import EDEMA, FAT, MUSCLE

# Above this, a texture has an isolated spectral peak: something periodic was drawn.
PERIODIC_LIMIT = 8.0


def periodic_peak_ratio(image: np.ndarray, mask: np.ndarray, detrend_px: float = 8.0,
                        min_period_px: float = 2.5, erode_px: int = 1) -> float:
    """Strongest peak of the power spectrum of `image` inside `mask`, over the mean of its frequency ring.

    image, mask: 2-D arrays of the same shape (one slice).  The mask is eroded by `erode_px` (partial
    volume at tissue borders), the slow trend inside it (bias, shading) is removed by a normalised
    Gaussian of `detrend_px`, and everything outside is zero.  Frequencies with a period shorter than
    `min_period_px` (the noise floor) or longer than 2 x `detrend_px` (removed by the detrending) are
    not judged.  The periodogram is averaged over 3 x 3 neighbouring frequencies so that a random
    texture's scatter stays small.  Returns NaN when the mask holds fewer than 256 pixels.
    """
    image = np.asarray(image, np.float64)
    mask = np.asarray(mask, bool)
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError("periodic_peak_ratio needs a 2-D image and a mask of the same shape")
    if erode_px > 0:
        mask = ndimage.binary_erosion(mask, iterations=erode_px)
    if mask.sum() < 256:
        return float("nan")
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    img, m = image[box], mask[box].astype(np.float64)
    # remove the local mean inside the mask (normalised convolution), scale to unit SD
    weight = ndimage.gaussian_filter(m, detrend_px)
    trend = ndimage.gaussian_filter(img * m, detrend_px) / np.maximum(weight, 1e-6)
    tex = (img - trend) * m
    sd = tex[m > 0].std()
    if sd <= 0:
        return 0.0
    tex /= sd
    # pad to at least 64 so that the rings hold enough frequencies
    ny, nx = max(tex.shape[0], 64), max(tex.shape[1], 64)
    power = np.abs(np.fft.fft2(tex, s=(ny, nx))) ** 2
    power = ndimage.uniform_filter(power, 3, mode="wrap")
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    radius = np.hypot(fy, fx)                      # cycles per pixel
    ring_width = 1.0 / min(ny, nx)
    ring = np.floor(radius / ring_width).astype(np.int64)
    total = np.bincount(ring.ravel(), power.ravel())
    count = np.bincount(ring.ravel())
    mean = total / np.maximum(count, 1)
    judged = (radius <= 1.0 / min_period_px) & (radius >= 1.0 / (2.0 * detrend_px)) & (count[ring] >= 16)
    if not judged.any():
        return float("nan")
    # the background of a frequency: the mean of its ring (other directions) and, along its own
    # direction, the power at 0.6-0.8x and 1.25-1.6x its radius (an oriented texture - fibres, a straight
    # septum - is a ridge through the origin, not an isolated peak)
    centre = np.array([ny // 2, nx // 2], float)
    shifted = np.fft.fftshift(power)
    fr = np.stack([fy * ny + 0 * fx, fx * nx + 0 * fy])[:, judged]

    def along(factor):
        return ndimage.map_coordinates(shifted, fr * factor + centre[:, None], order=1, mode="grid-wrap")

    factors = (0.6, 0.7, 0.8, 1.25, 1.4, 1.6)
    radial = np.exp(np.mean([np.log(np.maximum(along(f), 1e-12)) for f in factors], axis=0))
    background = np.maximum(mean[ring[judged]], radial)
    ratio = power[judged] / np.maximum(background, 1e-12)
    return float(ratio.max())


def tissue_peak_ratios(image: np.ndarray, labels: np.ndarray) -> dict:
    """periodic_peak_ratio of the fat (with any edema in it) and of the muscle of one slice."""
    fat = (labels == FAT) | (labels == EDEMA)
    return {"fat": periodic_peak_ratio(image, fat), "muscle": periodic_peak_ratio(image, labels == MUSCLE)}
