"""Random draw of one phantom study: anatomy, thrombi and acquisition.

Coordinates are RAS millimetres.  The groin lies at z = 0 and the thigh runs
down to z = -THIGH_LENGTH; the right leg is on +x, the left on -x.
Everything here is plain numbers; `render` turns it into voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.stages import STAGES
from .cues import CUES

THIGH_LENGTH = 360.0


def _u(rng, lo_hi):
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


@dataclass
class LegSpec:
    side: str                  # "right" (+x) or "left" (-x)
    center_x: float            # |x| of the thigh axis at the groin
    center_y: float
    half_width: float          # lateral semi-axis at the groin (mm)
    half_depth: float          # antero-posterior semi-axis at the groin
    fat_mm: float              # subcutaneous fat thickness
    swelling: float = 1.0      # > 1 in an acutely thrombosed leg
    subcutaneous_edema: float = 0.0
    septa_angles: list = field(default_factory=list)   # radial fat planes (radians, leg frame)
    outline: list = field(default_factory=list)        # [(order, amplitude, phase)] shape harmonics
    muscle_groups: list = field(default_factory=list)  # signal of the three muscle compartments

    @property
    def sign(self) -> float:
        return 1.0 if self.side == "right" else -1.0


@dataclass
class SubjectSpec:
    legs: list
    vein_radius: float         # common femoral vein radius at the groin (mm)
    vessel_path: list          # [u0, u1, v0, v1]: medial / anterior offsets (fraction of semi-axes)
    vessel_wiggle: list        # amplitude (mm), wavelength (mm), phase
    femur_radius: float
    cortex_mm: float
    fat: float                 # tissue signal / muscle
    marrow: float
    lumen: float               # black-blood residual signal / muscle
    muscle_texture: list       # [(kx, ky, kz, phase, amplitude), ...]


@dataclass
class ThrombusSpec:
    stage: str
    side: str
    z_center: float
    length: float
    ratio: float               # mean thrombus / muscle signal
    vein_scale: float
    occupancy: float           # share of the lumen the thrombus fills (1 = occlusive)
    eccentric: bool
    eccentric_angle: float
    flow_rim_mm: float
    channels: list             # [(radial fraction, angle, diameter mm, twist rad/mm), ...]
    webs: list                 # [(angle, offset fraction), ...]
    wall_thickening_mm: float
    edema_mm: float
    edema_strength: float
    collaterals: list          # [(angle, distance mm, radius mm), ...]
    patchiness: float
    texture: list              # [(kx, ky, kz, phase), ...] for the patchy signal
    small: bool


@dataclass
class AcquisitionSpec:
    stack: str                 # "axial" or "coronal"
    direction_lps: list        # 3x3, columns = i, j, k axes
    spacing: list
    size: list                 # i, j, k
    origin_lps: list
    oblique_deg: float
    gain: float                # scanner scale: muscle signal in stored units
    bias: list                 # coefficients of the log bias polynomial
    noise: float               # noise sigma / muscle signal


@dataclass
class CaseSpec:
    seed: int
    subject: SubjectSpec
    thrombi: list
    acquisition: AcquisitionSpec

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------
def sample_subject(rng: np.random.Generator) -> SubjectSpec:
    half_width = rng.uniform(60.0, 80.0)
    gap = rng.uniform(-6.0, 14.0)
    depth = half_width * rng.uniform(0.85, 1.0)
    fat = rng.uniform(7.0, 28.0) * half_width / 70.0
    legs = []
    for side in ("right", "left"):
        # Small left/right asymmetry, as in any real pair of legs.
        hw = half_width * rng.uniform(0.97, 1.03)
        legs.append(LegSpec(
            side=side, center_x=half_width + gap / 2, center_y=rng.uniform(-8.0, 8.0),
            half_width=hw, half_depth=depth * rng.uniform(0.97, 1.03), fat_mm=fat * rng.uniform(0.9, 1.1),
            septa_angles=[rng.uniform(0.6, 1.1), rng.uniform(2.2, 2.8), rng.uniform(3.6, 4.3)],
            outline=[[m, rng.uniform(0.0, 0.05 / (m - 1)), rng.uniform(0, 2 * np.pi)] for m in (2, 3, 4)],
            muscle_groups=[1.0, rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)],
        ))
    texture = []
    for _ in range(3):
        k = rng.normal(size=3)
        k = k / np.linalg.norm(k) * (2 * np.pi / rng.uniform(12.0, 40.0))
        texture.append([*k.tolist(), rng.uniform(0, 2 * np.pi), rng.uniform(0.015, 0.035)])
    return SubjectSpec(
        legs=legs,
        vein_radius=5.0 * float(np.clip(rng.normal(1.0, 0.12), 0.75, 1.3)),
        vessel_path=[rng.uniform(0.28, 0.40), rng.uniform(0.12, 0.22), rng.uniform(0.35, 0.5), rng.uniform(-0.25, -0.1)],
        vessel_wiggle=[rng.uniform(0.0, 1.5), rng.uniform(90.0, 200.0), rng.uniform(0, 2 * np.pi)],
        femur_radius=rng.uniform(11.5, 15.0),
        cortex_mm=rng.uniform(3.5, 6.5),
        fat=rng.uniform(2.6, 3.4),
        marrow=rng.uniform(2.1, 2.9),
        lumen=rng.uniform(0.1, 0.3),
        muscle_texture=texture,
    )


def _ratio(rng, cues) -> float:
    if cues.iso_fraction and rng.random() < cues.iso_fraction:
        return rng.uniform(0.95, 1.3)
    lo, hi = cues.ratio_clip
    return float(np.clip(rng.normal(cues.ratio_mean, cues.ratio_sd), lo, hi))


def sample_thrombus(rng: np.random.Generator, stage: str, side: str, z_range: tuple[float, float]) -> ThrombusSpec:
    cues = CUES[stage]
    small = rng.random() < 0.2
    span = z_range[1] - z_range[0]
    length = rng.uniform(8.0, 20.0) if small else rng.uniform(25.0, 120.0)
    length = float(min(length, span - 12.0))
    # A thrombus as long as the field of view allows leaves no room to move; rounding can then make the room
    # a hair below zero, which rng.uniform refuses. The same draw as rng.uniform(lo, hi) otherwise.
    lo, hi = z_range[0] + length / 2 + 6, z_range[1] - length / 2 - 6
    z_center = lo + max(hi - lo, 0.0) * rng.random()
    eccentric = bool(small or rng.random() < cues.eccentric_probability)
    occupancy = rng.uniform(0.35, 0.7) if eccentric else 1.0
    n_channels = int(rng.integers(cues.channels[0], cues.channels[1] + 1))
    channels = [[rng.uniform(0.0, 0.55), rng.uniform(0, 2 * np.pi), _u(rng, cues.channel_mm), rng.uniform(-0.02, 0.02)]
                for _ in range(n_channels)]
    webs = []
    if rng.random() < cues.web_probability:
        webs = [[rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4)] for _ in range(int(rng.integers(1, 3)))]
    edema = rng.random() < cues.edema_probability
    n_coll = int(rng.integers(cues.collaterals[0], cues.collaterals[1] + 1))
    collaterals = [[rng.uniform(0, 2 * np.pi), rng.uniform(4.0, 11.0), rng.uniform(0.9, 1.6)] for _ in range(n_coll)]
    texture = []
    for _ in range(3):
        k = rng.normal(size=3)
        k = k / np.linalg.norm(k) * (2 * np.pi / rng.uniform(3.0, 9.0))
        texture.append([*k.tolist(), rng.uniform(0, 2 * np.pi)])
    return ThrombusSpec(
        stage=stage, side=side, z_center=float(z_center), length=length, ratio=_ratio(rng, cues),
        vein_scale=_u(rng, cues.vein_scale), occupancy=float(occupancy), eccentric=eccentric,
        eccentric_angle=rng.uniform(0, 2 * np.pi),
        flow_rim_mm=rng.uniform(0.6, 1.4) if (stage == "acute" and not eccentric and rng.random() < 0.25) else 0.0,
        channels=channels, webs=webs, wall_thickening_mm=_u(rng, cues.wall_thickening_mm),
        edema_mm=_u(rng, cues.edema_mm) if edema else 0.0,
        edema_strength=_u(rng, cues.edema_strength) if edema else 0.0,
        collaterals=collaterals, patchiness=cues.patchiness, texture=texture, small=bool(small),
    )


def _random_rotation(rng, max_deg: float) -> tuple[np.ndarray, float]:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(5.0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k), float(np.rad2deg(angle))


def sample_acquisition(rng: np.random.Generator, subject: SubjectSpec) -> AcquisitionSpec:
    stack = "axial" if rng.random() < 0.7 else "coronal"
    in_plane = rng.uniform(0.9, 1.3)
    slice_mm = rng.uniform(1.0, 3.0)
    leg = subject.legs[0]
    width = 2 * (leg.center_x + leg.half_width) + rng.uniform(-20.0, 25.0)   # tight FOVs clip the skin
    depth = 2 * leg.half_depth + rng.uniform(15.0, 40.0)
    length = rng.uniform(130.0, 260.0)
    # Axes in LPS: L-R, P-A, S-I, each possibly reversed (DICOM LPS vs NIfTI RAS storage).
    lr, ap, si = np.eye(3)
    if stack == "axial":
        axes, extent, spacing = [lr, ap, si], [width, depth, length], [in_plane, in_plane, slice_mm]
    else:
        axes, extent, spacing = [lr, si, ap], [width, length, depth], [in_plane, in_plane, slice_mm]
    direction = np.stack([a * (1 if rng.random() < 0.5 else -1) for a in axes], axis=1)
    oblique = 0.0
    if rng.random() < 0.25:
        rot, oblique = _random_rotation(rng, 18.0)
        direction = rot @ direction
    size = [int(np.clip(round(e / s), 48, 400)) for e, s in zip(extent, spacing)]
    center_ras = np.array([rng.uniform(-8, 8), rng.uniform(-6, 6),
                           -rng.uniform(length / 2 + 10, THIGH_LENGTH - length / 2 - 10)])
    center_lps = center_ras * np.array([-1, -1, 1])
    origin = center_lps - direction @ (np.array(spacing) * (np.array(size) - 1) / 2)
    return AcquisitionSpec(
        stack=stack, direction_lps=direction.tolist(), spacing=spacing, size=size, origin_lps=origin.tolist(),
        oblique_deg=oblique, gain=float(400.0 * 2 ** rng.uniform(-1, 1)),
        bias=rng.normal(0, 1, size=9).tolist(), noise=rng.uniform(0.03, 0.08),
    )


def z_coverage(acq: AcquisitionSpec) -> tuple[float, float]:
    """RAS z range covered by the study's field of view (through its centre)."""
    d = np.asarray(acq.direction_lps)
    o = np.asarray(acq.origin_lps)
    ext = np.asarray(acq.spacing) * (np.asarray(acq.size) - 1)
    corners = np.array([o + d @ (ext * np.array([a, b, c])) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    centre_z = corners[:, 2].mean()
    # Along the thigh axis the inner part of the box is what every slice covers.
    half = (corners[:, 2].max() - corners[:, 2].min()) / 2
    return float(centre_z - 0.85 * half), float(centre_z + 0.85 * half)


def sample_case(seed: int, stages: list[str]) -> CaseSpec:
    """One study with a thrombus per entry of `stages` (0, 1 or 2; one per leg)."""
    if len(stages) > 2:
        raise ValueError("a phantom study holds at most two thrombi (one per leg)")
    if any(s not in STAGES for s in stages):
        raise ValueError(f"unknown stage in {stages}")
    rng = np.random.default_rng(seed)
    subject = sample_subject(rng)
    acquisition = sample_acquisition(rng, subject)
    sides = ["right", "left"] if rng.random() < 0.5 else ["left", "right"]
    z_range = z_coverage(acquisition)
    thrombi = []
    for index, stage in enumerate(stages):
        thrombi.append(sample_thrombus(rng, stage, sides[index], z_range))
    for t in thrombi:
        leg = next(leg for leg in subject.legs if leg.side == t.side)
        leg.swelling = max(leg.swelling, _u(rng, CUES[t.stage].swelling))
        if t.stage == "acute" and rng.random() < 0.5:
            leg.subcutaneous_edema = rng.uniform(0.15, 0.4)
    return CaseSpec(seed=seed, subject=subject, thrombi=thrombi, acquisition=acquisition)
