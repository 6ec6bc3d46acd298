"""Draw the femoral vessel bundle of a leg (vessels, thrombus, edema, collaterals) on scattered points.

Each point gets the tissue it lies in, layer over layer (perivascular edema, fat cuff, walls, lumens,
thrombus, webs, channels), with an analytic partial volume in plane: a layer covers a point by
clip(0.5 - d / h, 0, 1), d the signed distance to the layer's boundary and h the in-plane resolution.
`compose` samples several points across the slice profile of each voxel and averages them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...io.segmentation import ARTERY, EDEMA, FAT, MUSCLE, THROMBUS, VEIN, VEIN_WALL
from .acquisition import Contrast
from .anatomy import _periodic
from .lesion import Thrombus, fill_profile
from .noise import AngleTable, Table3D, gaussian_field, reticular
from .vessels import Tree, Tube


@dataclass
class LesionTextures:
    """Filtered-noise volumes around a thrombosed vein, in coordinates relative to the vein centre."""

    signal: Table3D         # thrombus heterogeneity
    strands: Table3D        # perivascular edema strands


def cuff_texture(rng: np.random.Generator, tree: Tree) -> AngleTable:
    """Irregular thickness of the perivascular fat cuffs of a leg: a smooth random function of the angle
    round each vessel and of z (each vessel reads it at its own phase)."""
    return AngleTable(rng, float(tree.z[0]), float(tree.z[-1]), corr_deg=rng.uniform(25, 50), corr_mm=rng.uniform(6, 15))


def lesion_textures(rng: np.random.Generator, t: Thrombus, tree: Tree) -> LesionTextures:
    tube = tree.tubes[t.vessel]
    r_max = float(tube.r.max() * np.sqrt(tube.aspect) + tube.wall.max()) + t.edema_mm + 6.0
    z_lo, z_hi = t.z_bottom - t.edema_margin_mm - 10.0, t.z_top + t.edema_margin_mm + 10.0
    step_xy, step_z = 0.5, 1.0
    n_xy = int(np.ceil(2 * r_max / step_xy)) + 1
    n_z = int(np.ceil((z_hi - z_lo) / step_z)) + 1
    origin = (-r_max, -r_max, z_lo)
    step = (step_xy, step_xy, step_z)
    sig = gaussian_field(rng, (n_xy, n_xy, n_z), (t.patch_mm / step_xy, t.patch_mm / step_xy, 1.5 * t.patch_mm / step_z))
    strands = gaussian_field(rng, (n_xy, n_xy, n_z), (1.4 / step_xy, 1.4 / step_xy, 2.5 / step_z))
    return LesionTextures(Table3D(sig, origin, step), Table3D(strands, origin, step))


def _soft(sd, h):
    return np.clip(0.5 - sd / np.float32(h), 0.0, 1.0)


class _Local:
    """A tube seen from a set of points: offsets, normalised radius and signed distance to the lumen."""

    def __init__(self, tube: Tube, zi: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray):
        self.idx = idx
        z_i = zi[idx]
        self.r = tube.r[z_i].astype(np.float32)
        self.wall = tube.wall[z_i].astype(np.float32)
        self.cuff = tube.cuff[z_i].astype(np.float32)
        self.dx = (x[idx] - tube.cx[z_i]).astype(np.float32)
        self.dy = (y[idx] - tube.cy[z_i]).astype(np.float32)
        c, s = np.float32(np.cos(tube.axis)), np.float32(np.sin(tube.axis))
        k = np.float32(np.sqrt(tube.aspect))
        a = (self.dx * c + self.dy * s) / k
        b = (-self.dx * s + self.dy * c) * k
        rough = _periodic(tube.rough, np.arctan2(b, a))
        r = np.maximum(self.r, np.float32(1e-3))
        self.q = np.hypot(a, b) / (r * rough)           # < 1 inside the lumen
        self.sd = (self.q - 1) * self.r                 # mm, approximately


def _candidates(tube: Tube, zi, x, y, reach: float) -> np.ndarray:
    r = tube.r[zi]
    near = r > 0
    dx = x - tube.cx[zi]
    dy = y - tube.cy[zi]
    near &= (dx * dx + dy * dy) < (r * np.sqrt(tube.aspect) + reach) ** 2
    return np.flatnonzero(near)


@dataclass
class Painted:
    value: np.ndarray       # image units
    label: np.ndarray       # tissue label of the point (0: left to the background)
    thrombus: np.ndarray    # thrombus coverage of the point (0..1)


def paint_leg(tree: Tree, thrombi: list, textures: dict, contrast: Contrast, h: float,
              x: np.ndarray, y: np.ndarray, z: np.ndarray, bg: np.ndarray, bg_label: np.ndarray) -> Painted:
    """Paint the bundle of one leg over the background values of the points.

    textures: "cuff" -> the leg's cuff Table3D; id(thrombus) -> its LesionTextures.
    """
    v = bg.astype(np.float32, copy=True)
    label = np.zeros(v.shape, np.uint8)
    thr = np.zeros(v.shape, np.float32)
    zi = tree.index(z)
    curve = contrast.curve
    fat_factor = np.ones(v.shape, np.float32)
    n_vessels = [t for t in tree.tubes.values() if t.kind in ("vein", "artery")]

    # 1. perivascular edema: lowers the T1 signal of the fat round the thrombosed vein (stranding),
    #    muscle a little; irregular strands, fading with distance and beyond the ends of the thrombus.
    for t in thrombi:
        if t.edema_mm <= 0:
            continue
        tube, tex = tree.tubes[t.vessel], textures[id(t)]
        idx = _candidates(tube, zi, x, y, float(tube.wall.max()) + t.edema_mm + h)
        if idx.size == 0:
            continue
        loc = _Local(tube, zi, x, y, idx)
        d_out = loc.sd - loc.wall
        zz = z[idx]
        zw = np.clip(np.minimum(zz - (t.z_bottom - t.edema_margin_mm), (t.z_top + t.edema_margin_mm) - zz)
                     / t.edema_margin_mm, 0, 1)
        w = zw * np.clip(1 - d_out / np.float32(t.edema_mm), 0, 1) ** 0.8 * (d_out > -0.5)
        s = reticular(tex.strands.sample(loc.dx, loc.dy, zz), 0.45)
        f = 1 - w * (0.25 + 0.45 * s)
        fat_factor[idx] = np.minimum(fat_factor[idx], f)
        lab = bg_label[idx]
        fatty = (lab == FAT) | (lab == EDEMA)
        v[idx] = np.where(fatty, v[idx] * f, np.where(lab == MUSCLE, v[idx] * (1 - 0.08 * w), v[idx]))
        strong = fatty & (w * (0.25 + 0.45 * s) > 0.22)
        label[idx[strong]] = EDEMA

    # 2. fat cuff round the vessels (irregular thickness), edema applied to it too
    sheath = np.float32(curve(contrast.sheath))
    for n_tube, tube in enumerate(n_vessels):
        if tube.cuff.max() <= 0:
            continue
        idx = _candidates(tube, zi, x, y, float(tube.wall.max() + 1.5 * tube.cuff.max()) + h)
        if idx.size == 0:
            continue
        loc = _Local(tube, zi, x, y, idx)
        theta = np.arctan2(loc.dy, loc.dx) + np.float32(2.1 * n_tube)
        # stays below the candidate reach (1.5 x the largest cuff), so the cuff is never cut off
        irregular = np.clip(0.8 + np.float32(1.1) * textures["cuff"].sample(theta, z[idx] + 37.0 * n_tube), 0, 1.45)
        sd = loc.sd - loc.wall - loc.cuff * irregular
        a = _soft(sd, h)
        target = sheath * fat_factor[idx]
        v[idx] += a * (target - v[idx])
        inside = sd < 0
        lab_in = np.where(fat_factor[idx] < 0.8, EDEMA, FAT).astype(np.uint8)
        label[idx[inside]] = lab_in[inside]

    # 3. walls, then 4. lumens (all tubes: veins and collaterals black, arteries black)
    values = {"vein": (curve(contrast.vein_wall), curve(contrast.vein_lumen), VEIN_WALL, VEIN),
              "artery": (curve(contrast.artery_wall), curve(contrast.artery_lumen), ARTERY, ARTERY)}
    locs = {}
    for tube in tree.tubes.values():
        idx = _candidates(tube, zi, x, y, float(tube.wall.max()) + h)
        if idx.size == 0:
            continue
        loc = _Local(tube, zi, x, y, idx)
        locs[tube.name] = loc
        wall_v, _, wall_l, _ = values[tube.kind]
        sd = loc.sd - loc.wall
        a = _soft(sd, h)
        v[idx] += a * (np.float32(wall_v) - v[idx])
        label[idx[sd < 0]] = wall_l
    for tube in tree.tubes.values():
        loc = locs.get(tube.name)
        if loc is None:
            continue
        _, lumen_v, _, lumen_l = values[tube.kind]
        a = _soft(loc.sd, h)
        v[loc.idx] += a * (np.float32(lumen_v) - v[loc.idx])
        label[loc.idx[loc.sd < 0]] = lumen_l

    # 5. thrombus, webs and recanalised channels inside the thrombosed vein
    lumen_v = np.float32(curve(contrast.vein_lumen))
    for t in thrombi:
        loc = locs.get(t.vessel)
        if loc is None:
            continue
        idx = loc.idx
        zz = z[idx]
        tex = textures[id(t)]
        shape_sd = _thrombus_sd(t, loc, zz)
        sd_t = np.maximum(loc.sd, shape_sd)
        a_t = _soft(sd_t, h)
        het = tex.signal.sample(loc.dx, loc.dy, zz)
        if t.stage == "subacute":           # patchy: blotches of brighter and darker thrombus
            het = np.tanh(1.6 * het) / np.float32(0.78)
        t1 = np.float32(t.ratio_tissue) * np.clip(1 + np.float32(t.heterogeneity) * het, 0.35, None)
        v[idx] += a_t * (curve(t1) - v[idx])
        cover = a_t.copy()
        in_t = sd_t < 0
        label[idx[in_t]] = THROMBUS
        # webs / synechiae: thin bands across the lumen (chronic)
        for lo, hi, ang, off, width in t.webs:
            proj = (loc.dx * np.float32(np.cos(ang)) + loc.dy * np.float32(np.sin(ang))) / np.maximum(loc.r, 1e-3)
            sd_w = np.abs(proj - np.float32(off)) * loc.r - np.float32(width / 2)
            active = (zz >= lo) & (zz <= hi)
            a_w = _soft(np.maximum(sd_w, loc.sd), h) * active * (1 - cover)
            web_t1 = np.float32(np.clip(t.ratio_tissue, 0.9, 1.8))
            v[idx] += a_w * (np.float32(curve(web_t1)) - v[idx])
            cover = cover + a_w
            in_w = active & (np.maximum(sd_w, loc.sd) < 0)
            label[idx[in_w]] = THROMBUS
        # recanalised channels: flow voids running inside the thrombus
        for rad, frac, path, lo, hi in t.channels:
            ang = path[zi[idx]]
            cx = frac * loc.r * np.cos(ang).astype(np.float32)
            cy = frac * loc.r * np.sin(ang).astype(np.float32)
            taper = np.clip(np.minimum(zz - lo, hi - zz) / 3.0, 0, 1)
            sd_c = np.hypot(loc.dx - cx, loc.dy - cy) - np.float32(rad) * taper
            a_c = _soft(sd_c, h) * (taper > 0) * np.clip(cover, 0, 1)
            v[idx] += a_c * (lumen_v - v[idx])
            cover = cover * (1 - _soft(sd_c, h) * (taper > 0))
            in_c = (sd_c < 0) & (taper > 0) & (loc.sd < 0)
            label[idx[in_c]] = VEIN
        thr[idx] = np.maximum(thr[idx], np.clip(cover, 0, 1))
    return Painted(v, label, thr)


def _thrombus_sd(t: Thrombus, loc: _Local, z: np.ndarray) -> np.ndarray:
    """Signed distance (mm) to the thrombus inside the lumen, before intersecting with the lumen."""
    f = fill_profile(t, z).astype(np.float32)
    r = loc.r
    big = np.float32(50.0)
    if t.kind == "occlusive":
        sd = (loc.q - f) * r
    elif t.kind == "free-floating":
        g = t.fill + (1 - t.fill) * np.clip(1 - (z - t.z_bottom) / 10.0, 0, 1)     # attached at its tail
        shift = np.float32(0.6 * (1 - t.fill))
        ox = -shift * np.float32(np.cos(t.wall_angle)) * r
        oy = -shift * np.float32(np.sin(t.wall_angle)) * r
        sd = np.hypot(loc.dx - ox, loc.dy - oy) - (g * f).astype(np.float32) * r
    elif t.kind == "crescent":
        proj = (loc.dx * np.float32(np.cos(t.wall_angle)) + loc.dy * np.float32(np.sin(t.wall_angle))) / r
        sd = ((1 - 2 * np.float32(t.fill) * f) - proj) * r
    else:   # mural: a rim on the wall, thicker on one side
        proj = (loc.dx * np.float32(np.cos(t.wall_angle)) + loc.dy * np.float32(np.sin(t.wall_angle))) / np.maximum(
            np.hypot(loc.dx, loc.dy), 1e-3)
        rim = np.float32(t.fill) * (0.35 + 0.65 * (1 + proj) / 2) * f
        sd = (1 - loc.q) * r - rim
    return np.where(f > 0, sd, big).astype(np.float32)
