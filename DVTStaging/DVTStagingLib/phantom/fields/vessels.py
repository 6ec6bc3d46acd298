"""The femoral vessels of one thigh as tubes along z: vein trunk (common femoral -> femoral), deep
femoral vein, femoral and deep femoral arteries, collaterals; each with a wandering path, a radius
profile, an irregular cross-section and a perivascular fat cuff.

Paths are drawn in the leg's template coordinates (angle from the thigh centre, depth below the
fascia, at a few knots from groin to knee, jittered and smoothed), then carried into the model frame
by the leg's z-frame.  Tables are sampled every `DZ` mm of z.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy import N_ANGLES, Frame, LegShape, _periodic, thigh_fraction
from .noise import circular_profile, smooth_curve

DZ = 0.5


@dataclass
class Tube:
    """One vessel over the z table: centre (model mm), lumen radius (0 where absent), wall, cuff."""

    name: str
    kind: str                   # "vein" or "artery"
    cx: np.ndarray
    cy: np.ndarray
    r: np.ndarray
    wall: np.ndarray
    cuff: np.ndarray            # perivascular fat beyond the wall (mm); 0: none
    aspect: float = 1.0         # flattening of the section (>= 1) along `axis`
    axis: float = 0.0           # radians, model frame
    rough: np.ndarray = field(default_factory=lambda: np.ones(N_ANGLES, np.float32))

    def present(self, n0: int, n1: int) -> bool:
        return bool(np.any(self.r[max(n0, 0):max(n1, 0) + 1] > 0))


@dataclass
class Tree:
    """All tubes of one leg on a common z table."""

    side: str
    z0: float
    z: np.ndarray
    tubes: dict                 # name -> Tube
    confluence_z: float         # where the deep femoral vein joins the trunk
    dfv_end_z: float
    plan: dict = field(default_factory=dict)    # what place_arteries needs

    def index(self, z) -> np.ndarray:
        return np.clip(np.rint((np.asarray(z) - self.z0) / DZ).astype(np.int64), 0, self.z.size - 1)


def _knots(rng, tau_knots, ranges):
    return np.array([rng.uniform(*r) for r in ranges]), np.asarray(tau_knots, float)


def draw_tree(rng: np.random.Generator, leg: LegShape, frame: Frame, z_lo: float, z_hi: float,
              size: float) -> Tree:
    """The vessels of one thigh between z_lo and z_hi (model mm)."""
    z = np.arange(z_lo, z_hi + DZ / 2, DZ)
    tau = thigh_fraction(z)
    n = z.size
    corr = 40.0 / DZ

    # vein trunk path in template coordinates: angle from the thigh centre (0 medial, -pi/2 anterior)
    # and depth below the fascia, knots from the femoral triangle to the adductor canal and popliteal fossa.
    angle_k, tk = _knots(rng, [0.0, 0.3, 0.6, 0.9, 1.05],
                         [(-1.25, -0.7), (-0.85, -0.3), (-0.3, 0.25), (0.45, 1.1), (0.8, 1.3)])
    depth_k, _ = _knots(rng, [0.0, 0.3, 0.6, 0.9, 1.05], [(5, 14), (12, 26), (18, 34), (22, 42), (25, 45)])
    angle = np.interp(tau, tk, angle_k) + 0.06 * smooth_curve(rng, n, corr)
    depth = (np.interp(tau, tk, depth_k) + 2.0 * smooth_curve(rng, n, corr)) * size ** 0.5
    outline = leg.outline_mm(angle)
    fascia = leg.fat_mm(angle)
    rho = np.maximum(outline - fascia - depth, 0.0)
    tu, tv = rho * np.cos(angle), rho * np.sin(angle)
    # keep clear of the femur
    fu, fv = leg.femur_center
    clear = float(leg.femur_radius.max()) + 12.0
    du, dv = tu - fu, tv - fv
    dist = np.hypot(du, dv)
    push = np.clip(clear - dist, 0, None) / np.maximum(dist, 1e-3)
    tu, tv = tu + du * push, tv + dv * push

    # calibre: common femoral above the confluence, femoral below
    confluence = float(rng.uniform(-115.0, -55.0))
    r_cfv = rng.uniform(4.3, 5.6) * size ** 0.3
    r_fv = rng.uniform(3.0, 4.0) * size ** 0.3
    ramp = np.clip((z - (confluence - 15.0)) / 20.0, 0, 1)
    r_vein = (r_fv + (r_cfv - r_fv) * ramp) * (1 + 0.04 * smooth_curve(rng, n, corr))
    r_art = 0.8 * r_vein * rng.uniform(0.88, 1.05)

    cuff0 = rng.uniform(0.6, 2.6)       # perivascular fat: more in the femoral triangle than the adductor canal
    cuff = cuff0 * (1.35 - 0.7 * tau) * np.exp(0.3 * smooth_curve(rng, n, corr))

    vx, vy = frame.to_model(leg, tu, tv, z)
    tubes = {
        "vein": Tube("vein", "vein", vx, vy, r_vein, np.full(n, rng.uniform(0.4, 0.7)), cuff,
                     float(rng.uniform(1.0, 1.45)), float(rng.uniform(-np.pi, np.pi)),
                     (1 + rng.uniform(0.03, 0.08) * circular_profile(rng, N_ANGLES, 50)).astype(np.float32)),
    }

    # deep femoral vein: leaves the trunk at the confluence toward the back of the femur and runs down
    dfv_len = rng.uniform(90.0, 190.0)
    dfv_end = confluence - dfv_len
    target_angle = rng.uniform(0.5, 1.6)        # posteromedial of the femur
    target_r = float(_periodic(leg.femur_radius, target_angle)) + rng.uniform(6.0, 12.0)
    gu = fu + target_r * np.cos(target_angle)
    gv = fv + target_r * np.sin(target_angle)
    merge = rng.uniform(25.0, 55.0)
    b = np.clip((confluence - z) / merge, 0, 1)
    b = b * b * (3 - 2 * b)
    du_u, du_v = tu * (1 - b) + gu * b, tv * (1 - b) + gv * b
    dx, dy = frame.to_model(leg, du_u, du_v, z)
    r_dfv = rng.uniform(2.4, 3.3) * size ** 0.3 * np.clip((z - dfv_end) / 40.0, 0.35, 1.0)
    r_dfv = np.where((z <= confluence) & (z >= dfv_end), r_dfv, 0.0)
    tubes["dfv"] = Tube("dfv", "vein", dx, dy, r_dfv, np.full(n, 0.45), cuff * 0.7,
                        float(rng.uniform(1.0, 1.3)), float(rng.uniform(-np.pi, np.pi)),
                        (1 + 0.05 * circular_profile(rng, N_ANGLES, 60)).astype(np.float32))

    # arteries beside the veins; their positions follow the final vein radius (see place_arteries)
    a_dir_k, _ = _knots(rng, [0.0, 0.3, 0.6, 0.9, 1.05],
                        [(2.85, 3.45), (3.3, 4.0), (3.5, 4.4), (3.6, 4.6), (3.6, 4.6)])
    tree = Tree(leg.side, float(z[0]), z, tubes, confluence, float(dfv_end))
    tree.plan = {
        "leg": leg, "frame": frame,
        "dir": np.interp(tau, tk, a_dir_k) + 0.08 * smooth_curve(rng, n, corr),
        "gap": rng.uniform(1.8, 3.5),
        "r_art": r_art, "r_dfa": r_dfv * 0.85 + (r_dfv > 0) * 0.2,
        "dfa_dir": float(target_angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)),
        "merge": b,
        "dfa_start": float(confluence + rng.uniform(0.0, 20.0)),
        "vein_uv": (tu, tv), "dfv_uv": (du_u, du_v),
        "art_wall": float(rng.uniform(0.8, 1.2)),
    }
    return tree


def place_arteries(tree: Tree) -> None:
    """Femoral and deep femoral arteries beside their veins, clear of the (possibly distended) vein."""
    p = tree.plan
    leg, frame, z = p["leg"], p["frame"], tree.z
    scale = frame.at(z)[2]
    vein, dfv = tree.tubes["vein"], tree.tubes["dfv"]
    wall_a = p["art_wall"]
    reach_v = vein.r * vein.aspect ** 0.5 + vein.wall
    offset = (reach_v + p["r_art"] + wall_a + p["gap"]) / scale
    au = p["vein_uv"][0] + offset * np.cos(p["dir"])
    av = p["vein_uv"][1] + offset * np.sin(p["dir"])
    ax, ay = frame.to_model(leg, au, av, z)
    n = z.size
    tree.tubes["artery"] = Tube("artery", "artery", ax, ay, p["r_art"], np.full(n, wall_a), vein.cuff.copy())
    # deep femoral artery: accompanies the deep femoral vein, starting a little higher
    r_dfa = np.where((z <= p["dfa_start"]) & (z >= tree.dfv_end_z), np.maximum(p["r_dfa"], 1.6), 0.0)
    reach_d = dfv.r * dfv.aspect ** 0.5 + dfv.wall
    off_d = (np.maximum(reach_d, 1.5) + r_dfa + wall_a * 0.8 + p["gap"]) / scale
    du, dv = p["dfv_uv"]
    # the DFA leaves the femoral artery and joins the deep femoral vein's course as the DFV leaves the trunk
    b = p["merge"]
    bu = (1 - b) * au + b * (du + off_d * np.cos(p["dfa_dir"]))
    bv = (1 - b) * av + b * (dv + off_d * np.sin(p["dfa_dir"]))
    bx, by = frame.to_model(leg, bu, bv, z)
    tree.tubes["dfa"] = Tube("dfa", "artery", bx, by, r_dfa, np.full(n, wall_a * 0.8), dfv.cuff.copy())


def add_collateral(rng: np.random.Generator, tree: Tree, z_top: float, z_bottom: float, name: str) -> Tube:
    """A small tortuous collateral vein running beside a chronically occluded segment; it leaves and
    rejoins the vein beyond the ends of the thrombus."""
    z = tree.z
    vein = tree.tubes["vein"]
    margin = rng.uniform(8.0, 25.0)
    za, zb = z_bottom - margin, z_top + margin
    t = np.clip((z - za) / max(zb - za, 1.0), 0, 1)
    inside = (z >= za) & (z <= zb)
    bump = 4 * t * (1 - t)
    dist = vein.r + rng.uniform(5.0, 16.0) * np.clip(bump * 1.6, 0, 1)
    n = z.size
    ang = rng.uniform(-np.pi, np.pi) + 0.9 * smooth_curve(rng, n, 25.0 / DZ)
    cx = vein.cx + dist * np.cos(ang)
    cy = vein.cy + dist * np.sin(ang)
    r = np.where(inside, rng.uniform(0.8, 1.9) * (0.8 + 0.2 * np.clip(bump * 3, 0, 1)), 0.0)
    tube = Tube(name, "vein", cx, cy, r, np.full(n, 0.3), np.zeros(n))
    tree.tubes[name] = tube
    return tube
