"""The paper's augmentations, batched in torch: flips, rotation ±30°, scale 0.85-1.25, blur, noise,
gamma, contrast and low-resolution simulation.

Geometry moves the global image and its box mask together, so I_L = I_G x mask
stays the lesion of the same slice.  Intensity changes act on I_G before the
local image is cut from it, so both branches see the same scanner.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _random_affine(n: int, gen: torch.Generator, max_deg=30.0, scale=(0.85, 1.25)) -> torch.Tensor:
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_deg)
    s = scale[0] + torch.rand(n, generator=gen) * (scale[1] - scale[0])
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    return theta


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    radius = 3
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernels = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)                  # [n, 7]
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    kr = kernels.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kr[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kr[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def augment_intensity(x: torch.Tensor, gen: torch.Generator, p: float = 0.3, keep_ratios: bool = False) -> torch.Tensor:
    """Blur, noise, gamma, contrast, low resolution; keep_ratios leaves out gamma and contrast (their
    random draws still happen, so the other augmentations see the same random stream)."""
    n = x.shape[0]

    def chosen():
        return (torch.rand(n, generator=gen) < p).float()[:, None, None, None]

    sel = chosen()
    sigma = 0.5 + torch.rand(n, generator=gen) * 0.7
    x = sel * _blur(x, sigma) + (1 - sel) * x
    sel = chosen()
    x = x + sel * torch.randn(x.shape, generator=gen) * 0.03
    sel = chosen()
    gamma = torch.exp((torch.rand(n, generator=gen) * 2 - 1) * 0.3)[:, None, None, None]
    if not keep_ratios:
        x = sel * x.clamp(min=0).pow(gamma) + (1 - sel) * x
    sel = chosen()
    contrast = (0.75 + torch.rand(n, generator=gen) * 0.5)[:, None, None, None]
    if not keep_ratios:
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = sel * ((x - mean) * contrast + mean) + (1 - sel) * x
    sel = chosen()
    h, w = x.shape[-2:]
    low = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
                        size=(h, w), mode="bilinear", align_corners=False)
    x = sel * low + (1 - sel) * x
    return x.clamp(0, 2.55)


def augment_batch(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator, keep_ratios: bool = False):
    """Augmented (global images, box masks); masks stay in [0, 1]."""
    theta = _random_affine(images.shape[0], gen)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return augment_intensity(images, gen, keep_ratios=keep_ratios), masks.clamp(0, 1)
