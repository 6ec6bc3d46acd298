"""Assemble a `fields` study on its acquisition grid.

Background: every voxel centre is carried into its leg's cross-section raster (scale, shift and twist
of the leg at that height) and read there.  The raster was blurred beforehand by the scanner's point
spread function projected on the cross-section (in-plane resolution and, for coronal or oblique
stacks, the slice profile), which is the partial-volume average of a structure that changes slowly
along the thigh.  Vessels and thrombus change fast along the thigh, so `paint_bundles` draws them
on several samples across each slice's profile and averages them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...io.segmentation import THROMBUS
from .acquisition import Contrast, Grid
from .anatomy import Template
from .bundle import paint_leg

SIDES = ("right", "left")       # right leg at -x, left leg at +x


def cross_section_image(template: Template, contrast: Contrast, grid: Grid, scale: float) -> np.ndarray:
    """The raster in image units (contrast curve), blurred by the PSF projected on the cross-section."""
    image = contrast.curve(template.tissue).astype(np.float32)
    var = np.zeros(2)
    sigma_in = grid.psf_mm / 2.355
    for axis in range(3):
        d = grid.direction[:2, axis]
        var_axis = sigma_in ** 2 if axis < 2 else grid.thickness ** 2 / 12.0
        var += var_axis * d ** 2
    sigma_px = np.sqrt(var) / (template.pixel * scale)        # (x, y) -> (columns u, rows v)
    return ndimage.gaussian_filter(image, (sigma_px[1], sigma_px[0]), truncate=3.0)


def render_background(grid: Grid, legs: dict, frames: dict, images: dict, templates: dict):
    """Background image (image units) and tissue labels of every voxel, from the two cross-sections."""
    nk, nj, ni = grid.shape
    half = templates[SIDES[0]].half
    pixel = templates[SIDES[0]].pixel
    width = templates[SIDES[0]].labels.shape[1]
    # both rasters side by side: right leg in columns [0, width), left leg in [width, 2 width)
    img = np.ascontiguousarray(np.concatenate([images[s] for s in SIDES], axis=1)).ravel()
    lab = np.ascontiguousarray(np.concatenate([templates[s].labels for s in SIDES], axis=1)).ravel()
    n_cols = 2 * width
    n_rows = templates[SIDES[0]].labels.shape[0]
    fr = [frames[s] for s in SIDES]
    nz = fr[0].cx.size
    z0, dz = fr[0].z0, fr[0].dz
    tab = {k: np.concatenate([getattr(f, k) for f in fr]).astype(np.float32) for k in ("cx", "cy")}
    tab["cs"] = np.concatenate([np.cos(f.twist) / f.scale for f in fr]).astype(np.float32)
    tab["sn"] = np.concatenate([np.sin(f.twist) / f.scale for f in fr]).astype(np.float32)
    m = grid.matrix.astype(np.float32)
    o = grid.origin.astype(np.float32)
    image = np.empty(grid.shape, np.float32)
    labels = np.empty(grid.shape, np.uint8)
    ii = np.arange(ni, dtype=np.float32)[None, None, :]
    jj = np.arange(nj, dtype=np.float32)[None, :, None]
    chunk = max(1, 120_000 // (nj * ni))
    inv_px = np.float32(1.0 / pixel)
    for k0 in range(0, nk, chunk):
        kk = np.arange(k0, min(k0 + chunk, nk), dtype=np.float32)[:, None, None]
        x = o[0] + m[0, 0] * ii + m[0, 1] * jj + m[0, 2] * kk
        y = o[1] + m[1, 0] * ii + m[1, 1] * jj + m[1, 2] * kk
        z = o[2] + m[2, 0] * ii + m[2, 1] * jj + m[2, 2] * kk
        x, y, z = np.broadcast_arrays(x, y, z)
        left = x > 0
        zi = np.clip(np.rint((z - z0) / dz), 0, nz - 1).astype(np.int32) + left * np.int32(nz)
        mirror = np.where(left, np.float32(-1), np.float32(1))
        up = (x - tab["cx"][zi]) * mirror
        vp = y - tab["cy"][zi]
        cs, sn = tab["cs"][zi], tab["sn"][zi]
        # each leg reads only its own raster (its border is air)
        col = np.clip((up * cs + vp * sn + half) * inv_px, 0, width - 2.001) + left * np.float32(width)
        row = np.clip((vp * cs - up * sn + half) * inv_px, 0, n_rows - 2.001)
        c0 = col.astype(np.int32)
        r0 = row.astype(np.int32)
        fc = col - c0
        frow = row - r0
        flat = r0 * n_cols + c0
        a = img[flat]
        b = img[flat + 1]
        top = a + (b - a) * fc
        a = img[flat + n_cols]
        b = img[flat + n_cols + 1]
        bottom = a + (b - a) * fc
        image[k0:k0 + chunk] = top + (bottom - top) * frow
        near = np.rint(row).astype(np.int32) * n_cols + np.rint(col).astype(np.int32)
        labels[k0:k0 + chunk] = lab[near]
    return image, labels


def _tube_points(tree, thrombi, h: float):
    """Centreline samples (every 2 mm) of every tube of a leg with the radius that can reach them."""
    rows = []
    extra = max([t.edema_mm for t in thrombi] + [0.0])
    for tube in tree.tubes.values():
        keep = np.flatnonzero(tube.r > 0)[::4]
        if keep.size == 0:
            continue
        reach = tube.r[keep] * np.sqrt(tube.aspect) + tube.wall[keep] + 1.5 * tube.cuff[keep] + extra + h + 2.0
        rows.append(np.stack([tube.cx[keep], tube.cy[keep], tree.z[keep], reach], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def paint_bundles(grid: Grid, image: np.ndarray, labels: np.ndarray, trees: dict, thrombi: dict,
                  textures: dict, contrast: Contrast) -> tuple[np.ndarray, dict]:
    """Draw each leg's vessels and thrombus over the background, averaging samples across the slice.

    thrombi: side -> list of (instance number, Thrombus).  Returns the instance volume and, per
    instance, the voxels with their mean thrombus coverage (for thrombi thinner than a voxel).
    """
    nk, nj, ni = grid.shape
    instances = np.zeros(grid.shape, np.uint8)
    coverage = {}
    h = grid.psf_mm
    offsets, weights = grid.sub_offsets()
    n_sub = offsets.size
    centre = n_sub // 2
    normal = grid.direction[:, 2]
    m = grid.matrix
    sp = grid.spacing
    slab = 6
    for side, tree in trees.items():
        leg_thrombi = [t for _, t in thrombi.get(side, [])]
        numbers = [n for n, _ in thrombi.get(side, [])]
        pts = _tube_points(tree, leg_thrombi, h)
        if pts.size == 0:
            continue
        ijk = grid.to_index(pts[:, :3])
        reach_i = pts[:, 3] / sp[0]
        reach_j = pts[:, 3] / sp[1]
        reach_k = pts[:, 3] / sp[2] + grid.thickness / (2 * sp[2]) + 0.5
        for k0 in range(0, nk, slab):
            k1 = min(k0 + slab, nk)
            sel = (ijk[:, 2] + reach_k > k0) & (ijk[:, 2] - reach_k < k1 - 1)
            if not sel.any():
                continue
            i0 = int(max(np.floor((ijk[sel, 0] - reach_i[sel]).min()), 0))
            i1 = int(min(np.ceil((ijk[sel, 0] + reach_i[sel]).max()) + 1, ni))
            j0 = int(max(np.floor((ijk[sel, 1] - reach_j[sel]).min()), 0))
            j1 = int(min(np.ceil((ijk[sel, 1] + reach_j[sel]).max()) + 1, nj))
            if i1 <= i0 or j1 <= j0:
                continue
            kk = np.arange(k0, k1, dtype=np.float64)[:, None, None, None]
            oo = offsets[None, :, None, None]
            jj = np.arange(j0, j1, dtype=np.float64)[None, None, :, None]
            ii = np.arange(i0, i1, dtype=np.float64)[None, None, None, :]
            coords = [(grid.origin[a] + m[a, 0] * ii + m[a, 1] * jj + m[a, 2] * kk + normal[a] * oo).astype(np.float32)
                      for a in range(3)]
            shape = (k1 - k0, n_sub, j1 - j0, i1 - i0)
            x, y, z = (np.broadcast_to(c, shape).ravel() for c in coords)
            bg = np.broadcast_to(image[k0:k1, None, j0:j1, i0:i1], shape).ravel()
            bg_lab = np.broadcast_to(labels[k0:k1, None, j0:j1, i0:i1], shape).ravel()
            painted = paint_leg(tree, leg_thrombi, textures[side], contrast, h, x, y, z, bg, bg_lab)
            value = painted.value.reshape(shape)
            image[k0:k1, j0:j1, i0:i1] = _profile_mean(value, weights)
            lab = painted.label.reshape(shape)[:, centre]
            box_labels = labels[k0:k1, j0:j1, i0:i1]
            box_labels[lab > 0] = lab[lab > 0]
            if numbers:
                cov = painted.thrombus.reshape(shape)
                mean_cov = _profile_mean(cov, weights)
                inst = instances[k0:k1, j0:j1, i0:i1]
                inst[lab == THROMBUS] = numbers[0]
                hit = np.nonzero(mean_cov > 0.05)
                if hit[0].size:
                    flat = np.ravel_multi_index((hit[0] + k0, hit[1] + j0, hit[2] + i0), grid.shape)
                    store = coverage.setdefault(numbers[0], [[], []])
                    store[0].append(flat)
                    store[1].append(mean_cov[hit])
    coverage = {n: (np.concatenate(f), np.concatenate(c)) for n, (f, c) in coverage.items()}
    return instances, coverage


def _profile_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over axis 1 (the samples across the slice profile)."""
    out = values[:, 0] * np.float32(weights[0])
    for n in range(1, weights.size):
        out += values[:, n] * np.float32(weights[n])
    return out


def ensure_instances(instances: np.ndarray, labels: np.ndarray, coverage: dict, numbers: list) -> None:
    """A thrombus thinner than a voxel still marks the voxels it covers most (half of its best cover)."""
    for n in numbers:
        if np.any(instances == n) or n not in coverage:
            continue
        flat, cov = coverage[n]
        keep = flat[cov >= 0.5 * cov.max()]
        instances.flat[keep] = n
        labels.flat[keep] = THROMBUS
