"""Thrombus cues of the `fields` style, drawn per stage (numbers chosen here from DESIGN.md section 4 and
the BTI literature it cites; they overlap between stages as real thrombi do).

T1 thrombus/muscle signal ratio (methaemoglobin): acute high, about N(2.8, 1.0) with a share nearly
iso-intense; sub-acute N(2.0, 0.8) and patchy; chronic N(1.4, 0.6), low.  Vein calibre: acute distended,
chronic shrunken with a thickened wall.  Perivascular edema (acute, mildly sub-acute) lowers the T1
signal of the perivascular fat.  Recanalised channels (flow voids), webs, wall-adherent thrombus and
collaterals mark older thrombi.  Small non-occlusive thrombi occur at every stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .noise import smooth_curve
from .vessels import DZ, Tree

# kind of occlusion per stage: occlusive (fills the lumen), free-floating (a tail with flow round it),
# crescent (non-occlusive, on one wall), mural (a wall-adherent rim round an open or recanalised lumen)
_KINDS = {
    "acute": (("occlusive", 0.72), ("free-floating", 0.22), ("crescent", 0.06)),
    "subacute": (("occlusive", 0.55), ("crescent", 0.3), ("free-floating", 0.08), ("mural", 0.07)),
    "chronic": (("mural", 0.45), ("occlusive", 0.33), ("crescent", 0.22)),
}
SMALL_FRACTION = 0.15


@dataclass
class Thrombus:
    stage: str
    side: str
    vessel: str                 # tube name: "vein" (trunk) or "dfv"
    segment: str                # anatomical name of the segment
    z_top: float
    z_bottom: float
    ratio_tissue: float         # T1 thrombus/muscle before the scanner's contrast curve
    heterogeneity: float        # relative SD of the thrombus signal
    patch_mm: float             # size of the signal patches
    kind: str
    fill: float                 # free-floating: radius fraction; crescent: share of the diameter; mural: rim mm
    wall_angle: float           # side the thrombus adheres to (model frame, radians)
    vein_scale: float
    wall_thickening_mm: float
    edema_mm: float
    edema_margin_mm: float
    tip_mm: float
    tail_mm: float
    small: bool
    channels: list = field(default_factory=list)     # (radius mm, offset fraction, angle path, z_lo, z_hi)
    webs: list = field(default_factory=list)         # (z_lo, z_hi, angle, offset fraction, thickness mm)
    collaterals: list = field(default_factory=list)  # tube names
    ratio: float = 0.0          # image ratio after the contrast curve (set by the study)

    @property
    def length(self) -> float:
        return self.z_top - self.z_bottom

    @property
    def eccentric(self) -> bool:
        return self.kind in ("crescent", "mural")


@dataclass
class Cues:
    """The stage-dependent numbers of one thrombus, before it is placed in a vein."""

    stage: str
    ratio_tissue: float
    heterogeneity: float
    patch_mm: float
    kind: str
    vein_scale: float
    wall_thickening_mm: float
    edema_mm: float
    sc_edema: float             # subcutaneous edema strength of the leg
    swell: float                # limb swelling
    n_channels: int
    n_webs: int
    n_collaterals: int
    small: bool


def draw_cues(rng: np.random.Generator, stage: str) -> Cues:
    """Stage cues, independent of anatomy and scanner."""
    u = rng.random
    if stage == "acute":
        ratio = rng.uniform(0.95, 1.4) if u() < 0.17 else float(np.clip(rng.normal(2.8, 1.0), 1.2, 5.0))
        het, patch = rng.uniform(0.05, 0.14), rng.uniform(1.0, 2.5)
        vein_scale = rng.uniform(1.05, 1.2) if u() < 0.12 else rng.uniform(1.2, 1.5)
        wall = 0.0
        edema = rng.uniform(0.5, 2.0) if u() < 0.12 else rng.uniform(2.0, 8.0)
        sc_edema = rng.uniform(0.45, 1.0) if u() < 0.65 else 0.0
        swell = rng.uniform(1.03, 1.1)
        channels = 1 if u() < 0.05 else 0
        webs, collaterals = 0, 0
    elif stage == "subacute":
        ratio = float(np.clip(rng.normal(2.0, 0.8), 0.9, 4.2))
        het, patch = rng.uniform(0.18, 0.38), rng.uniform(1.5, 4.0)
        vein_scale = rng.uniform(0.9, 1.0) if u() < 0.1 else rng.uniform(1.0, 1.2)
        wall = rng.uniform(0.2, 0.8) if u() < 0.3 else 0.0
        edema = rng.uniform(0.5, 3.0) if u() < 0.5 else 0.0
        sc_edema = rng.uniform(0.2, 0.5) if u() < 0.2 else 0.0
        swell = rng.uniform(1.0, 1.05)
        channels = int(rng.integers(1, 3)) if u() < 0.75 else 0
        webs = 1 if u() < 0.1 else 0
        collaterals = 1 if u() < 0.15 else 0
    elif stage == "chronic":
        ratio = float(np.clip(rng.normal(1.4, 0.6), 0.8, 2.2))
        het, patch = rng.uniform(0.08, 0.2), rng.uniform(1.0, 3.0)
        vein_scale = rng.uniform(0.9, 1.0) if u() < 0.1 else rng.uniform(0.6, 0.9)
        wall = rng.uniform(1.0, 2.0)
        edema = 0.0
        sc_edema = rng.uniform(0.15, 0.35) if u() < 0.1 else 0.0      # post-thrombotic swelling
        swell = rng.uniform(1.0, 1.04)
        channels = int(rng.integers(2, 6)) if u() < 0.85 else 1
        webs = int(rng.integers(1, 4)) if u() < 0.55 else 0
        collaterals = int(rng.integers(1, 5)) if u() < 0.8 else 0
    else:
        raise ValueError(f"unknown stage {stage!r}")
    small = bool(u() < SMALL_FRACTION)
    kinds, weights = zip(*_KINDS[stage])
    kind = str(rng.choice(kinds, p=np.array(weights) / sum(weights)))
    if small and kind == "occlusive":
        kind = "free-floating" if stage == "acute" else "crescent"
    return Cues(stage, float(ratio), float(het), float(patch), kind, float(vein_scale), float(wall),
                float(edema), float(sc_edema), float(swell), channels, webs, collaterals, small)


def _uniform_from(rng: np.random.Generator, low: float, high: float) -> float:
    """A uniform draw in [low, high]; `low` when the range is empty (a confluence high in the field of view, a
    long thrombus).  One draw either way, so the studies drawn after it do not change."""
    return float(rng.uniform(low, max(low, high)))


def place_thrombus(rng: np.random.Generator, cues: Cues, side: str, tree: Tree, z_lo: float, z_hi: float) -> Thrombus:
    """Choose the segment and extent of the thrombus along the leg's veins (within z_lo..z_hi)."""
    conf = tree.confluence_z
    if cues.small:
        length = rng.uniform(8.0, 20.0)
    else:
        length = float(np.clip(rng.lognormal(np.log(65.0), 0.45), 25.0, 160.0))
    top_cfv = -8.0
    u = rng.random()
    if u < 0.08 and conf - tree.dfv_end_z > length + 15:
        vessel, segment = "dfv", "deep femoral vein"
        top = rng.uniform(tree.dfv_end_z + length + 8, conf - 6)
    elif u < 0.38 and top_cfv - conf > length + 4:
        vessel, segment = "vein", "common femoral vein"
        top = rng.uniform(conf + length + 2, top_cfv)
    elif u < 0.5:
        vessel, segment = "vein", "common femoral to femoral vein"
        top = _uniform_from(rng, max(conf + 5, conf + 0.3 * length), min(top_cfv, conf + 0.7 * length + 5))
    else:
        vessel, segment = "vein", "femoral vein"
        top = _uniform_from(rng, max(z_lo + length + 10, conf - 160), conf - 10)
    top = float(np.clip(top, z_lo + length + 5, z_hi - 5))
    bottom = top - length
    if cues.kind == "free-floating":
        fill = rng.uniform(0.45, 0.85)
    elif cues.kind == "crescent":
        fill = rng.uniform(0.3, 0.75)
    elif cues.kind == "mural":
        fill = rng.uniform(1.0, 3.0)
    else:
        fill = 1.0
    t = Thrombus(
        stage=cues.stage, side=side, vessel=vessel, segment=segment, z_top=float(top), z_bottom=float(bottom),
        ratio_tissue=cues.ratio_tissue, heterogeneity=cues.heterogeneity, patch_mm=cues.patch_mm, kind=cues.kind,
        fill=float(fill), wall_angle=float(rng.uniform(-np.pi, np.pi)), vein_scale=cues.vein_scale,
        wall_thickening_mm=cues.wall_thickening_mm, edema_mm=cues.edema_mm,
        edema_margin_mm=float(rng.uniform(8.0, 25.0)), tip_mm=float(min(rng.uniform(3.0, 12.0), 0.4 * length)),
        tail_mm=float(min(rng.uniform(2.0, 8.0), 0.3 * length)), small=cues.small,
    )
    n = tree.z.size
    for _ in range(cues.n_channels):
        frac = rng.uniform(0.6, 1.0)
        span = frac * length
        lo = bottom + rng.uniform(0, length - span)
        path = rng.uniform(-np.pi, np.pi) + 0.8 * smooth_curve(rng, n, 20.0 / DZ)
        t.channels.append((float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.0, 0.55)), path, float(lo), float(lo + span)))
    for _ in range(cues.n_webs):
        span = rng.uniform(4.0, min(25.0, max(length - 2, 4.5)))
        lo = bottom + rng.uniform(0, max(length - span, 0))
        t.webs.append((float(lo), float(lo + span), float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(-0.5, 0.5)),
                       float(rng.uniform(0.6, 1.2))))
    return t


def apply_to_vein(t: Thrombus, tree: Tree) -> None:
    """Distend or shrink the thrombosed vein and thicken its wall over the thrombus (smooth ramps)."""
    tube = tree.tubes[t.vessel]
    z = tree.z
    ramp = 8.0
    w = np.clip(np.minimum(z - (t.z_bottom - ramp), (t.z_top + ramp) - z) / ramp, 0, 1)
    w = w * w * (3 - 2 * w)
    tube.r = tube.r * (1 + (t.vein_scale - 1) * w)
    tube.wall = tube.wall + t.wall_thickening_mm * w
    if t.vein_scale > 1.1:                       # a distended vein rounds out
        tube.aspect = 1 + (tube.aspect - 1) / t.vein_scale ** 3


def fill_profile(t: Thrombus, z: np.ndarray) -> np.ndarray:
    """Share of the lumen the thrombus spans at height z: rounded tip above, short tail below."""
    top = np.clip((t.z_top - z) / max(t.tip_mm, 0.5), 0, 1)
    bottom = np.clip((z - t.z_bottom) / max(t.tail_mm, 0.5), 0, 1)
    return np.sqrt(np.minimum(top, bottom))
