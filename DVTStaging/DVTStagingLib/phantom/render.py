"""Rasterise a `CaseSpec` into a BTI image, a tissue labelmap and thrombus instances.

Every structure is a signed distance (mm, negative inside) evaluated at the
voxel centres of the study's own grid, so any orientation (axial or coronal
stack, LPS or RAS storage, oblique) is drawn directly, without resampling.
Edges blend over about one voxel, which gives the partial-volume look of a
real acquisition.  Small structures are evaluated only in the block of
voxels around them.  Intensities are relative to muscle (1.0); the scanner
model (`scanner.py`) adds gain, bias field and Rician noise afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.segmentation import ARTERY, BONE, EDEMA, FAT, MUSCLE, SKIN, THROMBUS, VEIN, VEIN_WALL
from .random_fields import SmoothField
from .spec import THIGH_LENGTH, CaseSpec, LegSpec, SubjectSpec, ThrombusSpec

F = np.float32


@dataclass
class Rendered:
    intensity: np.ndarray   # [k, j, i] float32, muscle = 1
    labels: np.ndarray      # [k, j, i] uint8 tissue labels
    instances: np.ndarray   # [k, j, i] uint8, thrombus n+1 of spec.thrombi, else 0


class Grid:
    """Voxel centres of a study in RAS, computed per block by broadcasting."""

    def __init__(self, direction_lps, spacing, size, origin_lps):
        lin = np.asarray(direction_lps, dtype=float) * np.asarray(spacing, dtype=float)[None, :]
        flip = np.array([-1.0, -1.0, 1.0])
        self.matrix = np.zeros((3, 4))
        self.matrix[:, :3] = flip[:, None] * lin
        self.matrix[:, 3] = flip * np.asarray(origin_lps, dtype=float)
        self.size = tuple(int(s) for s in size)          # i, j, k
        self.shape = self.size[::-1]                     # k, j, i
        self.voxel_mm = float(min(spacing[:2]))
        self.spacing_kji = tuple(float(s) for s in spacing[::-1])

    def slabs(self, max_voxels: int):
        """Blocks of whole k-slices of at most about max_voxels voxels each."""
        per_slice = self.shape[1] * self.shape[2]
        step = max(1, max_voxels // per_slice)
        for k0 in range(0, self.shape[0], step):
            yield (slice(k0, min(k0 + step, self.shape[0])), slice(0, self.shape[1]), slice(0, self.shape[2]))

    def coords(self, block):
        k, j, i = (np.arange(s.start, s.stop, dtype=F) for s in block)
        m = self.matrix.astype(F)
        out = []
        for row in m:
            out.append(row[3] + row[0] * i[None, None, :] + row[1] * j[None, :, None] + row[2] * k[:, None, None])
        return out

    def block_around(self, ras_points: np.ndarray, margin_mm: float):
        """Voxel block [k, j, i] slices covering points ± margin, or None when outside."""
        lo = ras_points.min(axis=0) - margin_mm
        hi = ras_points.max(axis=0) + margin_mm
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        inv = np.linalg.inv(np.vstack([self.matrix, [0, 0, 0, 1]]))
        ijk = corners @ inv[:3, :3].T + inv[:3, 3]
        first = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
        last = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, self.size)
        if np.any(last <= first):
            return None
        return tuple(slice(int(first[a]), int(last[a])) for a in (2, 1, 0))

    def z_span(self) -> tuple[float, float]:
        corners = np.array([[a, b, c] for a in (0, self.size[0] - 1) for b in (0, self.size[1] - 1)
                            for c in (0, self.size[2] - 1)], dtype=float)
        z = corners @ self.matrix[2, :3] + self.matrix[2, 3]
        return float(z.min()), float(z.max())


def _alpha(sdf, width):
    """Coverage of a voxel by the inside (sdf < 0) of a structure: a one-voxel ramp."""
    return np.clip(F(0.5) - sdf / F(width), F(0), F(1))


def _paint(image, labels, block, alpha, value, label=None, where=None):
    """Blend `value` into the image with coverage `alpha`; label voxels that are mostly covered."""
    if where is not None:
        alpha = alpha * where
    region = image[block]
    region += alpha * (value - region)
    if label is not None:
        labels[block][alpha > 0.5] = label


def _window(z, z0, z1, ramp):
    """1 inside [z0, z1], ramping to 0 over `ramp` mm outside."""
    return np.clip(np.minimum(z - z0, z1 - z) / ramp + 1.0, 0.0, 1.0).astype(F)


def _texture(x, y, z, waves):
    """Heterogeneity with unit-ish amplitude from a few plane waves (only the thrombus's, see _paint_thrombus)."""
    out = np.zeros(np.broadcast(x, y, z).shape, dtype=F)
    for kx, ky, kz, phase, *amp in waves:
        out += F(amp[0] if amp else 1.0) * np.cos(F(kx) * x + F(ky) * y + F(kz) * z + F(phase))
    return out


# ---------------------------------------------------------------------------
# Anatomy along the thigh
# ---------------------------------------------------------------------------
TAPER = 0.28      # thigh shrinks by this fraction from groin to knee
CONVERGE = 0.12   # legs move this fraction closer to the midline
DROP = 6.0        # mm the thigh axis moves posteriorly


def thigh_t(z):
    return np.clip(-z / THIGH_LENGTH, 0.0, 1.0)


class Leg:
    def __init__(self, leg: LegSpec, subject: SubjectSpec):
        self.spec = leg
        self.subject = subject

    def center(self, z):
        t = thigh_t(z)
        return self.spec.sign * self.spec.center_x * (1 - CONVERGE * t), self.spec.center_y - DROP * t

    def semi_axes(self, z):
        taper = (1 - TAPER * thigh_t(z)) * self.spec.swelling
        return self.spec.half_width * taper, self.spec.half_depth * taper

    def to_ras(self, um, v, z):
        """Leg frame (um medial, v anterior) to RAS x, y."""
        cx, cy = self.center(z)
        return cx - self.spec.sign * um, cy + v

    def femur(self, z):
        a, b = self.semi_axes(z)
        return -0.10 * a, -0.06 * b

    def vein_radius(self, z):
        return self.subject.vein_radius * (1 - 0.3 * thigh_t(z))

    def femoral_vein(self, z):
        u0, u1, v0, v1 = self.subject.vessel_path
        t = thigh_t(z)
        a, b = self.semi_axes(z)
        amp, wavelength, phase = self.subject.vessel_wiggle
        um = a * (u0 + (u1 - u0) * t) + amp * np.sin(2 * np.pi * z / wavelength + phase)
        return um, b * (v0 + (v1 - v0) * t)

    def femoral_artery(self, z):
        um, v = self.femoral_vein(z)
        theta = np.pi - (np.pi / 2) * thigh_t(z)      # lateral at the groin, anterior lower down
        d = 1.9 * self.vein_radius(z)
        return um + d * np.cos(theta), v + d * np.sin(theta)

    def deep_vessels(self, z):
        uf, vf = self.femur(z)
        d = self.subject.femur_radius + 7.0
        return uf + d * np.cos(-0.8), vf + d * np.sin(-0.8)

    def saphenous(self, z):
        a, b = self.semi_axes(z)
        f = self.spec.fat_mm * 0.5
        return (a - f) * np.cos(0.25), (b - f) * np.sin(0.25)


# ---------------------------------------------------------------------------
def render(spec: CaseSpec) -> Rendered:
    acq = spec.acquisition
    grid = Grid(acq.direction_lps, acq.spacing, acq.size, acq.origin_lps)
    image = np.zeros(grid.shape, dtype=F)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    instances = np.zeros(grid.shape, dtype=np.uint8)
    w = grid.voxel_mm
    legs = [Leg(leg, spec.subject) for leg in spec.subject.legs]
    strands = _edema_strands(spec, grid)
    muscle_field = SmoothField(np.random.default_rng([spec.seed, 4]), grid.shape, grid.spacing_kji, MUSCLE_CORR_MM)
    # Slabs of a few slices keep the whole-volume arithmetic in cache.
    for block in grid.slabs(max_voxels=1 << 18):
        _paint_limbs(grid, image, labels, legs, spec.subject, w, block, strands, muscle_field)
    z_lo, z_hi = grid.z_span()
    z_samples = np.linspace(z_lo, z_hi, 48)
    for leg in legs:
        thrombi = [(n, t) for n, t in enumerate(spec.thrombi) if t.side == leg.spec.side]
        _paint_femur(grid, image, labels, leg, spec.subject, w, z_samples)
        _paint_tube(grid, image, labels, leg, leg.deep_vessels, lambda z: 2.6 + 0 * z, spec.subject.lumen, VEIN, w,
                    z_samples, offset=(0.0, 0.0))
        _paint_tube(grid, image, labels, leg, leg.deep_vessels, lambda z: 2.0 + 0 * z, spec.subject.lumen, ARTERY, w,
                    z_samples, offset=(-4.8, 1.5))
        _paint_tube(grid, image, labels, leg, leg.saphenous, lambda z: 2.0 + 0 * z, spec.subject.lumen, VEIN, w,
                    z_samples, offset=(0.0, 0.0))
        _paint_femoral_bundle(grid, image, labels, instances, leg, spec.subject, thrombi, w, z_samples)
    return Rendered(image, labels, instances)


# Strands sit where a smooth random field of this correlation length crosses zero: an irregular network
# with cells of about 5-10 mm, the scale of the reticular pattern the old plane waves drew periodically.
STRAND_CORR_MM = 3.0
STRAND_WIDTH = 1.47    # |field| below this: on a strand (unit-sd field); 1.47 makes on_strand average 0


def _edema_strands(spec: CaseSpec, grid: Grid) -> SmoothField | None:
    """The random field whose zero set draws a swollen leg's subcutaneous edema, or None without one.

    Its own random stream (the study's seed, stream 3), so that every other voxel of the study stays as drawn.
    """
    if not any(leg.subcutaneous_edema > 0 for leg in spec.subject.legs):
        return None
    return SmoothField(np.random.default_rng([spec.seed, 3]), grid.shape, grid.spacing_kji, STRAND_CORR_MM)


# Muscle heterogeneity: smooth, on the scale of the 12-40 mm waves the phantom once summed (periodic).
MUSCLE_CORR_MM = 8.0


def _muscle_texture_sd(subject: SubjectSpec) -> float:
    """The spread the drawn amplitudes gave the old sum of cosines (sd of a cosine: amplitude / sqrt 2)."""
    return float(np.sqrt(sum(t[4] ** 2 for t in subject.muscle_texture) / 2))


def _paint_limbs(grid, image, labels, legs, subject, w, block, strands: SmoothField | None,
                 muscle_field: SmoothField):
    x, y, z = grid.coords(block)
    right = x >= 0
    by_side = {leg.spec.side: leg.spec for leg in legs}
    R, L = by_side["right"], by_side["left"]

    def per_leg(value):
        """Per-voxel value of a leg's scalar parameter (one where() per parameter)."""
        return np.where(right, F(value(R)), F(value(L)))

    t = thigh_t(z).astype(F)
    taper = 1 - F(TAPER) * t
    a = per_leg(lambda s: s.half_width * s.swelling) * taper
    b = per_leg(lambda s: s.half_depth * s.swelling) * taper
    um = per_leg(lambda s: s.center_x) * (1 - F(CONVERGE) * t) - np.where(right, x, -x)   # medial
    v = y - per_leg(lambda s: s.center_y) + F(DROP) * t                                    # anterior
    del t, taper
    r = np.sqrt(um * um + v * v) + F(1e-3)
    # Irregular outline: low-order harmonics of the polar angle (cos/sin by recurrence).
    c1, s1 = um / r, v / r
    cm, sm = c1, s1
    wobble = np.ones_like(r)
    for order in (2, 3, 4):
        cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
        amp_c = per_leg(lambda s: s.outline[order - 2][1] * np.cos(s.outline[order - 2][2]))
        amp_s = per_leg(lambda s: s.outline[order - 2][1] * np.sin(s.outline[order - 2][2]))
        wobble += amp_c * cm - amp_s * sm
    del c1, s1, cm, sm

    def ellipse_sdf(shrink):
        aa, bb = a * wobble - shrink, b * wobble - shrink
        q = np.sqrt((um / aa) ** 2 + (v / bb) ** 2) + F(1e-6)
        return (q - 1) * r / q

    _paint(image, labels, block, _alpha(ellipse_sdf(0.0), w), 1.3, SKIN)
    fat_value = F(subject.fat)
    if strands is not None:
        # Subcutaneous edema of a swollen leg on T1: an irregular network of low-signal strands in the fat
        # (never a regular pattern). `on_strand` runs from -1 (away) to 1 (on a strand), about 0 on average,
        # so the fat loses half of `oedema` on average, as before.
        oedema = per_leg(lambda s: s.subcutaneous_edema)
        on_strand = F(1) - F(2) * np.minimum(np.abs(strands.block(block)) / F(STRAND_WIDTH), F(1))
        fat_value = fat_value * (1 - oedema * (F(0.5) + F(0.5) * on_strand))
        del oedema, on_strand
    _paint(image, labels, block, _alpha(ellipse_sdf(1.8), w), fat_value, FAT)
    del fat_value
    muscle_alpha = _alpha(ellipse_sdf(per_leg(lambda s: s.fat_mm)), w)
    del wobble, r
    # Three muscle compartments (extensors, flexors, adductors) with their own signal,
    # separated by wavy intermuscular fat planes running out from the femur.
    pu, pv = um + F(0.10) * a, v + F(0.06) * b          # relative to the femur (Leg.femur)
    del um, v, a, b
    muscle_value = F(1) + F(_muscle_texture_sd(subject)) * muscle_field.block(block)
    dirs = [(per_leg(lambda s, n=n: np.cos(s.septa_angles[n])), per_leg(lambda s, n=n: np.sin(s.septa_angles[n])))
            for n in range(3)]
    for n in (1, 2):
        (c0, s0), (c1, s1) = dirs[n - 1], dirs[n]
        # Between two septa (each pair spans less than half a turn): two cross-product signs.
        in_group = ((c0 * pv - s0 * pu) >= 0) & ((c1 * pv - s1 * pu) < 0)
        gain = per_leg(lambda s, n=n: s.muscle_groups[n])
        muscle_value = np.where(in_group, muscle_value * gain, muscle_value)
    _paint(image, labels, block, muscle_alpha, muscle_value, MUSCLE)
    del muscle_value
    inside_muscle = muscle_alpha > 0.99
    for c, s in dirs:
        along = c * pu + s * pv
        across = np.abs(-s * pu + c * pv + F(1.5) * np.sin(along * F(0.15)))
        sdf = np.where(along > subject.femur_radius, across - F(0.9), F(99))
        _paint(image, labels, block, _alpha(sdf, w) * inside_muscle, subject.fat, FAT)


def _paint_femur(grid, image, labels, leg, subject, w, z_samples):
    """Fatty marrow inside a dark cortex, in the block around the femur."""
    uf, vf = leg.femur(z_samples)
    xs, ys = leg.to_ras(uf, vf, z_samples)
    block = grid.block_around(np.stack([xs, ys, z_samples], axis=1), subject.femur_radius + 2.0)
    if block is None:
        return
    x, y, z = grid.coords(block)
    cx, cy = leg.to_ras(*leg.femur(z), z)
    rho = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    _paint(image, labels, block, _alpha(rho - F(subject.femur_radius), w), 0.06, BONE)
    _paint(image, labels, block, _alpha(rho - F(subject.femur_radius - subject.cortex_mm), w), subject.marrow, BONE)


def _paint_tube(grid, image, labels, leg, path, radius, lumen, label, w, z_samples, offset):
    um, v = path(z_samples)
    um, v = um + offset[0], v + offset[1]
    xs, ys = leg.to_ras(um, v, z_samples)
    block = grid.block_around(np.stack([xs, ys, z_samples], axis=1), 6.0)
    if block is None:
        return
    x, y, z = grid.coords(block)
    cu, cv = path(z)
    cx, cy = leg.to_ras(cu + offset[0], cv + offset[1], z)
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    r = radius(z)
    _paint(image, labels, block, _alpha(d - r - 0.6, w), 1.05)
    _paint(image, labels, block, _alpha(d - r, w), lumen, label)


def _segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
    return np.sqrt((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2)


def _chord_offset(fraction: float) -> float:
    """Chord position c (in radii) whose circular segment {x > c} covers `fraction` of the disk."""
    lo, hi = -1.0, 1.0
    for _ in range(40):
        c = (lo + hi) / 2
        covered = (np.arccos(c) - c * np.sqrt(1 - c * c)) / np.pi
        lo, hi = (c, hi) if covered > fraction else (lo, c)
    return (lo + hi) / 2


EDEMA_T1 = 0.85   # signal of perivascular edema on T1, relative to muscle (was 1.25 until 2026-12-07: a bright ring)


def _paint_femoral_bundle(grid, image, labels, instances, leg, subject, thrombi, w, z_samples):
    vu, vv = leg.femoral_vein(z_samples)
    xs, ys = leg.to_ras(vu, vv, z_samples)
    block = grid.block_around(np.stack([xs, ys, z_samples], axis=1), 26.0)
    if block is None:
        return
    x, y, z = grid.coords(block)
    vu, vv = leg.femoral_vein(z)
    au, av = leg.femoral_artery(z)
    vx, vy = leg.to_ras(vu, vv, z)
    ax, ay = leg.to_ras(au, av, z)
    r_normal = leg.vein_radius(z).astype(F)
    dx, dy = x - vx, y - vy
    rho = np.sqrt(dx * dx + dy * dy)

    # Thrombus-dependent lumen, wall and edema along the vein.
    scale = np.ones_like(z)
    wall = np.full_like(z, F(0.7))
    edema = np.zeros_like(rho)
    for _, t in thrombi:
        win = _window(z, t.z_center - t.length / 2, t.z_center + t.length / 2, 6.0)
        scale += (t.vein_scale - 1) * win
        wall += t.wall_thickening_mm * win
        if t.edema_mm > 0:
            win_e = _window(z, t.z_center - t.length / 2 - 8, t.z_center + t.length / 2 + 8, 10.0)
            r_outer = r_normal * scale + wall
            fall = np.clip(1 - (rho - r_outer) / F(t.edema_mm), 0, 1)
            edema = np.maximum(edema, F(t.edema_strength) * win_e * fall)
    r = r_normal * scale
    # Perivascular fat around the vein and artery (where edema shows as stranding).
    cuff = _segment_distance(x, y, vx, vy, ax, ay) - np.maximum(r, 0.8 * r_normal) - F(3.0)
    _paint(image, labels, block, _alpha(cuff, w), subject.fat, FAT, where=(labels[block] != BONE))
    if np.any(edema > 0):
        # On T1 the fluid of edema lengthens T1: strands darker than fat and a little darker than muscle
        # (bright only on T2 or STIR), so the halo pulls the soft tissue's signal down towards 0.85 of muscle,
        # never up, and leaves bone alone.
        region = image[block]
        lab = labels[block]
        soft = (lab == FAT) | (lab == MUSCLE)
        region += edema * soft * np.minimum(F(EDEMA_T1) - region, F(0))
        lab[(edema > 0.25) & soft] = EDEMA
    # Artery: thin wall, black lumen.
    da = np.sqrt((x - ax) ** 2 + (y - ay) ** 2)
    ra = 0.8 * r_normal
    _paint(image, labels, block, _alpha(da - ra - 0.6, w), 1.05)
    _paint(image, labels, block, _alpha(da - ra, w), subject.lumen, ARTERY)
    # Vein wall (thickened in chronic DVT) and black lumen.
    wall_value = 1.05 + 0.1 * np.clip(wall - 0.7, 0, 1)
    _paint(image, labels, block, _alpha(rho - r - wall, w), wall_value, VEIN_WALL)
    _paint(image, labels, block, _alpha(rho - r, w), subject.lumen, VEIN)
    for n, t in thrombi:
        _paint_thrombus(image, labels, instances, block, x, y, z, dx, dy, rho, r, t, n + 1, subject, w)
        for angle, dist, radius in t.collaterals:
            cx = vx + (r + dist) * np.cos(angle)
            cy = vy + (r + dist) * np.sin(angle)
            dc = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
            win = _window(z, t.z_center - t.length / 2 - 12, t.z_center + t.length / 2 + 12, 6.0)
            _paint(image, labels, block, _alpha(dc - radius, w) * win, subject.lumen, VEIN)


def _paint_thrombus(image, labels, instances, block, x, y, z, dx, dy, rho, r, t: ThrombusSpec, instance, subject, w):
    z0, z1 = t.z_center - t.length / 2, t.z_center + t.length / 2
    win = _window(z, z0, z1, 1.5)
    if not np.any(win > 0):
        return
    if t.eccentric:
        # Wall-adherent: the circular segment beyond a chord covers `occupancy` of the lumen.
        c = _chord_offset(t.occupancy)
        proj = dx * np.cos(t.eccentric_angle) + dy * np.sin(t.eccentric_angle)
        sdf = np.maximum(rho - r, c * r - proj)
    else:
        # Occlusive, with a narrower free-floating tip at the upstream (cranial) end and
        # sometimes a thin rim of flow around it.
        tip = min(12.0, t.length / 4)
        frac = 0.55 + 0.45 * np.clip((z1 - z) / tip, 0, 1) if t.stage != "chronic" else 1.0
        sdf = rho - (r * frac - t.flow_rim_mm)
    for angle, offset in t.webs:
        across = np.abs(-np.sin(angle) * dx + np.cos(angle) * dy - offset * r)
        sdf = np.minimum(sdf, np.maximum(across - 0.5, rho - r))
    for radial, angle, diameter, twist in t.channels:
        phi = angle + twist * (z - t.z_center)
        cx = radial * r * np.cos(phi)
        cy = radial * r * np.sin(phi)
        dc = np.sqrt((dx - cx) ** 2 + (dy - cy) ** 2)
        sdf = np.maximum(sdf, diameter / 2 - dc)
    alpha = _alpha(sdf, w) * win
    # Still a sum of three plane waves (3-9 mm): the bundled model relies on this drawing (docs/phantom.md, cue
    # review), so a random field replaces it together with retrained models (issue 18).
    value = F(t.ratio) * np.clip(1 + F(t.patchiness) * _texture(x, y, z, t.texture) / F(1.5), 0.3, None)
    _paint(image, labels, block, alpha, value, THROMBUS)
    instances[block][alpha > 0.5] = instance
