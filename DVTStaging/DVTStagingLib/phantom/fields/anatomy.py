"""Thigh anatomy of the `fields` style: irregular outlines, compartments and fat from random fields.

Frame (mm, "model" frame = patient LPS before the table offset): x to the patient's left, y posterior,
z superior; z = 0 at the groin (common femoral vein), the knee near z = -400; the legs rest on the
table at y = `table_y`.  Each leg is one 2-D cross-section drawn on a raster (`Template`) in leg
coordinates u (medial), v (posterior); along z it is scaled (taper, swelling), shifted and twisted.
Shapes are random polygons smoothed by filtered noise, distance maps and a weighted, warped Voronoi
partition; nothing is an analytic ellipse and no texture is periodic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...io.segmentation import BONE, EDEMA, FAT, MUSCLE, SKIN, VEIN
from .noise import circular_profile, gaussian_field, reticular

THIGH_LENGTH = 400.0        # groin to knee (mm)
N_ANGLES = 360              # samples of every circular profile


@dataclass
class LegShape:
    """Everything drawn for one thigh (parameters only; the raster is built at the acquisition's pixel)."""

    side: str                   # "left" / "right" (patient)
    seed: int                   # texture stream of this leg
    radius: float               # mean outline radius at the groin (mm)
    outline: np.ndarray         # relative radius per angle (N_ANGLES), mean 1
    fat: np.ndarray             # subcutaneous fat thickness per angle (mm)
    skin: float                 # skin thickness (mm)
    femur_center: tuple         # (u, v) mm
    femur_radius: np.ndarray    # outer radius per angle (mm)
    cortex: np.ndarray          # cortex thickness per angle (mm)
    n_compartments: int
    septum_mm: float            # mean intermuscular septum thickness
    marbling: float             # fraction of intramuscular fat
    muscle_texture: tuple       # amplitudes (fine, coarse)
    sc_edema: float             # strength of subcutaneous edema (0: none)
    swell: float                # limb swelling factor (1: none)
    taper: float                # relative shrink of the outline from groin to knee
    twist_deg: tuple            # rotation of the section at the groin and its change to the knee
    gap: float                  # distance between the thighs (mm)
    gsv: tuple                  # great saphenous vein: (angle rad, depth fraction in fat, radius mm)
    center_x: np.ndarray = field(default=None)   # filled by place_legs: tables over z
    center_y: np.ndarray = field(default=None)

    @property
    def mirror(self) -> float:
        """u (medial) = mirror * (x - cx): medial is -x for the left leg, +x for the right leg."""
        return -1.0 if self.side == "left" else 1.0

    def outline_mm(self, angle) -> np.ndarray:
        return self.radius * self.swell * _periodic(self.outline, angle)

    def fat_mm(self, angle) -> np.ndarray:
        return _periodic(self.fat, angle)

    @property
    def reach(self) -> float:
        """Largest outline radius (mm) at the groin, swelling included."""
        return float(self.radius * self.swell * self.outline.max())


def _periodic(table: np.ndarray, angle) -> np.ndarray:
    """Linear interpolation of a per-angle table (N_ANGLES samples over [-pi, pi))."""
    step = 2 * np.pi / table.size
    pos = (np.asarray(angle) + np.pi) / step
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)
    i0 %= table.size
    return table[i0] * (1 - w) + table[(i0 + 1) % table.size] * w


def _angles() -> np.ndarray:
    return -np.pi + 2 * np.pi * np.arange(N_ANGLES) / N_ANGLES


def draw_leg(rng: np.random.Generator, side: str, size: float, swollen: float, sc_edema: float) -> LegShape:
    """One thigh: outline, fat, femur and texture parameters; `size` scales the patient, `swollen` >= 1."""
    ang = _angles()
    radius = size * rng.uniform(68.0, 88.0)
    # Outline: a random polygon smoothed round the circle, squashed along a random axis, with a
    # posterior-medial soft-tissue bulge of random size.
    rough = circular_profile(rng, N_ANGLES, rng.uniform(25, 60))
    squash_axis = rng.uniform(-np.pi, np.pi)
    squash = rng.uniform(-0.12, 0.12)
    bulge_at = rng.uniform(0.6, 2.2)      # between medial (0) and posterior-lateral
    bulge = rng.uniform(0.0, 0.12) * np.exp(-0.5 * (np.angle(np.exp(1j * (ang - bulge_at))) / rng.uniform(0.4, 0.9)) ** 2)
    outline = (1 + rng.uniform(0.03, 0.07) * rough) * (1 + squash * np.cos(2 * (ang - squash_axis))) * (1 + bulge)
    outline = (outline / outline.mean()).astype(np.float32)
    # Subcutaneous fat: a patient-level thickness, thicker medially/posteriorly in some, irregular.
    fat0 = size * rng.uniform(5.0, 26.0)
    fat_rough = circular_profile(rng, N_ANGLES, rng.uniform(15, 45))
    fat_region = 1 + rng.uniform(0.0, 0.5) * np.exp(-0.5 * (np.angle(np.exp(1j * (ang - rng.uniform(0, 1.8)))) / 0.9) ** 2)
    fat = fat0 * fat_region * np.exp(rng.uniform(0.12, 0.3) * fat_rough)
    fat *= 1.0 + 2.0 * (swollen - 1.0)          # a swollen leg carries thicker, edematous fat
    fat = np.clip(fat, 2.5, 0.42 * radius).astype(np.float32)
    # Femur: irregular rounded section, slightly lateral, with the linea aspera ridge posteriorly.
    femur_c = (radius * rng.uniform(-0.18, 0.02), radius * rng.uniform(-0.12, 0.08))
    r_f = rng.uniform(11.0, 15.5) * size ** 0.5
    ridge = rng.uniform(1.5, 4.0) * np.exp(-0.5 * (np.angle(np.exp(1j * (ang - np.pi / 2 - rng.uniform(-0.3, 0.3)))) / 0.28) ** 2)
    femur_r = (r_f * (1 + 0.04 * circular_profile(rng, N_ANGLES, 40)) + ridge).astype(np.float32)
    cortex = (rng.uniform(3.0, 5.5) * (1 + 0.15 * circular_profile(rng, N_ANGLES, 50)) + 0.8 * ridge).astype(np.float32)
    return LegShape(
        side=side, seed=int(rng.integers(2**31)), radius=float(radius), outline=outline, fat=fat,
        skin=float(rng.uniform(1.0, 2.2)), femur_center=femur_c, femur_radius=femur_r, cortex=cortex,
        n_compartments=int(rng.integers(7, 13)), septum_mm=float(rng.uniform(0.5, 1.5)),
        marbling=float(rng.uniform(0.0, 0.025)) if rng.random() < 0.6 else 0.0, muscle_texture=(float(rng.uniform(0.025, 0.07)), float(rng.uniform(0.03, 0.07))),
        sc_edema=float(sc_edema), swell=float(swollen), taper=float(rng.uniform(0.22, 0.38)),
        twist_deg=(float(rng.uniform(-10, 10)), float(rng.uniform(-14, 14))), gap=float(rng.uniform(2.0, 28.0)),
        gsv=(float(rng.uniform(-0.9, 0.25)), float(rng.uniform(0.35, 0.65)), float(rng.uniform(1.4, 2.6))),
    )


# -- placement along z --------------------------------------------------------------------------------
@dataclass
class Frame:
    """Per-leg transform tables over z (steps of dz mm): template (u, v) <-> model (x, y)."""

    z0: float
    dz: float
    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray
    twist: np.ndarray       # radians

    def index(self, z) -> np.ndarray:
        return np.clip(np.rint((np.asarray(z) - self.z0) / self.dz).astype(np.int64), 0, self.cx.size - 1)

    def at(self, z):
        """Centre x, y, scale and twist at heights z (linear interpolation)."""
        zt = self.z0 + self.dz * np.arange(self.cx.size)
        return tuple(np.interp(z, zt, t) for t in (self.cx, self.cy, self.scale, self.twist))

    def to_model(self, leg: LegShape, u, v, z):
        """Template coordinates at height z -> model x, y."""
        cx, cy, s, tw = self.at(z)
        c, sn = np.cos(tw), np.sin(tw)
        up = s * (u * c - v * sn)
        vp = s * (u * sn + v * c)
        return cx + leg.mirror * up, cy + vp


def thigh_fraction(z) -> np.ndarray:
    """0 at the groin, 1 at the knee."""
    return np.clip(-np.asarray(z, float) / THIGH_LENGTH, 0.0, 1.0)


def place_legs(rng: np.random.Generator, legs: list[LegShape], z_lo: float, z_hi: float,
               table_y: float) -> dict[str, Frame]:
    """Centre, scale and twist of each thigh over z: thighs rest on the table, separated by a gap."""
    dz = 0.25
    z = np.arange(z_lo, z_hi + dz, dz)
    tau = thigh_fraction(z)
    frames = {}
    pad = int(200 / dz)
    gap = np.mean([leg.gap for leg in legs]) + 4.0 * gaussian_field(rng, (z.size + 2 * pad,), 60.0 / dz)[pad:pad + z.size]
    gap = np.maximum(gap, 1.0)
    for leg in legs:
        scale = 1.0 - leg.taper * tau ** 1.15
        twist = np.deg2rad(leg.twist_deg[0] + leg.twist_deg[1] * tau)
        ang = _angles()
        r = leg.radius * leg.swell * leg.outline
        # medial reach (toward the other leg) and posterior reach (toward the table), over the twist range
        medial = np.max(r * np.clip(np.cos(ang), 0, None)) + 3.0
        posterior = np.max(r * np.clip(np.sin(ang), 0, None))
        cx = leg.mirror * -1.0 * (gap / 2 + medial * scale)
        wobble = 3.0 * gaussian_field(rng, (z.size + 2 * pad,), 50.0 / dz)[pad:pad + z.size]
        cy = table_y - posterior * scale * rng.uniform(0.93, 1.0) + wobble
        frames[leg.side] = Frame(float(z[0]), dz, cx.astype(np.float64), cy.astype(np.float64),
                                 scale.astype(np.float64), twist.astype(np.float64))
        leg.center_x, leg.center_y = frames[leg.side].cx, frames[leg.side].cy
    return frames


# -- the cross-section raster -------------------------------------------------------------------------
@dataclass
class Template:
    """One leg's cross-section: tissue labels and T1 tissue values (muscle = 1) on a square raster."""

    half: float             # raster covers u, v in [-half, half] mm
    pixel: float            # mm
    labels: np.ndarray      # uint8 [v, u]
    tissue: np.ndarray      # float32 [v, u], T1 units before the scanner's contrast curve


def build_template(leg: LegShape, pixel: float, tissue: dict, half: float) -> Template:
    """Draw the cross-section of one thigh: skin, subcutaneous fat (septa, edema), muscle compartments,
    intermuscular septa, femur (cortex, marrow) and the great saphenous vein.  The raster covers
    [-half, half] mm (at least the leg's reach)."""
    rng = np.random.default_rng(leg.seed)
    n = int(np.ceil(2 * half / pixel)) + 1
    axis = (-half + pixel * np.arange(n)).astype(np.float32)
    u, v = np.meshgrid(axis, axis)                      # u: columns (medial), v: rows (posterior)
    theta = np.arctan2(v, u)
    rho = np.hypot(u, v)
    mm = 1.0 / pixel                                    # pixels per mm

    body = rho < leg.outline_mm(theta)
    depth = ndimage.distance_transform_edt(body).astype(np.float32) * np.float32(pixel)
    fascia = leg.fat_mm(theta) + 1.2 * gaussian_field(rng, u.shape, 3.0 * mm)
    inner = body & (depth > np.maximum(fascia, leg.skin + 1.0))
    skin = body & (depth <= leg.skin)
    subcut = body & ~inner & ~skin

    # femur
    fu, fv = leg.femur_center
    f_theta = np.arctan2(v - fv, u - fu)
    f_rho = np.hypot(u - fu, v - fv)
    f_out = _periodic(leg.femur_radius, f_theta)
    bone = f_rho < f_out
    marrow = f_rho < f_out - _periodic(leg.cortex, f_theta)
    muscle_zone = inner & ~bone

    comp, septum = _compartments(rng, leg, u, v, muscle_zone, pixel)

    labels = np.zeros(u.shape, np.uint8)
    labels[skin] = SKIN
    labels[subcut] = FAT
    labels[muscle_zone] = MUSCLE
    labels[muscle_zone & septum] = FAT
    labels[bone] = BONE

    fat_value = np.float32(tissue["fat"])
    values = np.zeros(u.shape, np.float32)
    # muscle: a factor per muscle, fine and coarse filtered-noise heterogeneity, fatty marbling
    factors = (1.0 + 0.035 * rng.standard_normal(leg.n_compartments + 1)).astype(np.float32)
    a_fine, a_coarse = leg.muscle_texture
    muscle = factors[comp] * (1 + a_fine * gaussian_field(rng, u.shape, 0.35 * mm)
                              + a_coarse * gaussian_field(rng, u.shape, 2.5 * mm))
    if leg.marbling > 0:
        # intramuscular fat: irregular flecks, denser in some muscles than others
        speck = gaussian_field(rng, u.shape, 0.5 * mm) + 0.6 * gaussian_field(rng, u.shape, 1.5 * mm) \
            + 0.8 * gaussian_field(rng, u.shape, 8.0 * mm)
        thr = np.quantile(speck[muscle_zone], 1 - leg.marbling) if muscle_zone.any() else 9.0
        fatty = np.clip((speck - thr) / 0.5 + 0.3, 0, 1)
        muscle = muscle * (1 - fatty) + 0.6 * fat_value * fatty
    values[muscle_zone] = muscle[muscle_zone]
    sep_value = fat_value * np.float32(rng.uniform(0.6, 0.9))
    values[muscle_zone & septum] = sep_value

    # subcutaneous fat: mild heterogeneity, a sparse irregular network of fibrous septa
    fat = fat_value * (1 + 0.03 * gaussian_field(rng, u.shape, 1.5 * mm))
    strands = reticular(gaussian_field(rng, u.shape, rng.uniform(3.0, 7.0) * mm), rng.uniform(0.06, 0.12))
    sparse = np.clip(gaussian_field(rng, u.shape, 10.0 * mm) + rng.uniform(-0.3, 0.5), 0, 1)
    fat = fat * (1 - rng.uniform(0.3, 0.6) * strands * sparse)
    edema = np.zeros(u.shape, bool)
    if leg.sc_edema > 0:
        # edema of a swollen leg: irregular reticular low-signal strands, densest in part of the
        # circumference and in the deep fat; fat lobules stay bright between them.
        net = reticular(gaussian_field(rng, u.shape, rng.uniform(1.6, 3.2) * mm), rng.uniform(0.18, 0.35))
        where = np.clip(0.6 + 0.8 * _periodic(circular_profile(rng, N_ANGLES, rng.uniform(40, 90)), theta), 0, 1)
        deep = np.clip(depth / np.maximum(fascia, 1.0), 0, 1) ** 0.5
        weight = net * where * (0.4 + 0.6 * deep) * np.float32(leg.sc_edema)
        fat = fat * (1 - 0.8 * weight) + np.float32(tissue["edema"]) * 0.8 * weight
        edema = subcut & (weight > 0.35)
    values[subcut] = fat[subcut]
    labels[edema] = EDEMA

    values[skin] = np.float32(tissue["skin"]) * (1 + 0.05 * gaussian_field(rng, u.shape, 1.0 * mm))[skin]
    cortex_value = np.float32(tissue["cortex"])
    marrow_value = np.float32(tissue["marrow"]) * (1 + 0.05 * gaussian_field(rng, u.shape, 1.2 * mm)
                                                   - 0.12 * np.clip(gaussian_field(rng, u.shape, 3.0 * mm), 0, None))
    values[bone] = cortex_value
    values[marrow] = marrow_value[marrow]

    # great saphenous vein: a flow void in the medial subcutaneous fat
    g_angle, g_frac, g_r = leg.gsv
    g_rho = float(leg.outline_mm(g_angle)) - max(float(leg.fat_mm(g_angle)) * g_frac, leg.skin + g_r + 0.5)
    gu, gv = g_rho * np.cos(g_angle), g_rho * np.sin(g_angle)
    gsv = np.hypot(u - gu, v - gv) < g_r
    if (gsv & subcut).sum() >= 0.6 * gsv.sum() > 0:
        values[gsv] = np.float32(tissue["vein_lumen"])
        labels[gsv] = VEIN
    return Template(float(half), float(pixel), labels, values)


def _compartments(rng, leg: LegShape, u, v, zone, pixel):
    """Muscle compartments: a multiplicatively weighted Voronoi partition of warped coordinates.

    Returns the compartment index per pixel and the septum mask (thin, irregular fat planes between
    compartments).  Computed on a raster twice as coarse; the septum test runs at full resolution on
    the upsampled distance gap, so septa stay thin and smooth.
    """
    step = 2
    uc, vc = u[::step, ::step], v[::step, ::step]
    zc = zone[::step, ::step]
    mm = 1.0 / (pixel * step)
    warp = rng.uniform(6.0, 14.0)
    fine = rng.uniform(1.0, 2.5)
    wu = uc + warp * gaussian_field(rng, uc.shape, 16.0 * mm) + fine * gaussian_field(rng, uc.shape, 4.0 * mm)
    wv = vc + warp * gaussian_field(rng, uc.shape, 16.0 * mm) + fine * gaussian_field(rng, uc.shape, 4.0 * mm)
    candidates = np.flatnonzero(zc.ravel())
    seeds = []
    if candidates.size:
        for _ in range(200):
            c = candidates[rng.integers(candidates.size)]
            p = (uc.flat[c], vc.flat[c])
            if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 0.45 * leg.radius for q in seeds):
                seeds.append(p)
            if len(seeds) >= leg.n_compartments:
                break
    if len(seeds) < 2:
        return np.zeros(u.shape, np.int64), np.zeros(u.shape, bool)
    weights = rng.uniform(0.8, 1.25, len(seeds))
    d1 = np.full(uc.shape, np.inf, np.float32)
    d2 = np.full(uc.shape, np.inf, np.float32)
    idx = np.zeros(uc.shape, np.int64)
    for n, ((su, sv), w) in enumerate(zip(seeds, weights)):
        d = np.hypot(wu - su, wv - sv) * np.float32(w)
        closer = d < d1
        d2 = np.where(closer, d1, np.minimum(d2, d))
        d1 = np.where(closer, d, d1)
        idx[closer] = n + 1
    gap = d2 - d1
    full = ndimage.zoom(gap, step, order=1)[: u.shape[0], : u.shape[1]]
    full = np.pad(full, [(0, u.shape[0] - full.shape[0]), (0, u.shape[1] - full.shape[1])], mode="edge")
    comp = np.repeat(np.repeat(idx, step, 0), step, 1)[: u.shape[0], : u.shape[1]]
    comp = np.pad(comp, [(0, u.shape[0] - comp.shape[0]), (0, u.shape[1] - comp.shape[1])], mode="edge")
    # septa vary in thickness and fade out in places (a fascial plane without visible fat)
    thickness = leg.septum_mm * np.clip(1 + 0.7 * gaussian_field(rng, u.shape, 8.0 / pixel), 0.0, None)
    septum = zone & (full < thickness)
    return comp, septum
