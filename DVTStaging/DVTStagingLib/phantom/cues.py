"""The clinical cues of each DVT stage, as the phantom draws them (docs/phantom.md).

Every number is a property of the thrombus or its surroundings relative to
the same study's muscle, so absolute intensity carries no stage information.
Ranges overlap between neighbouring stages on purpose: real thrombi do.

Sources: T1 thrombus/muscle ratio acute 2.8±1.2 vs chronic 1.4±0.6 (Xie et
al., JCMR 2017; Wu et al., Acta Radiol 2022); vein dilatation and
perivascular edema in acute DVT; recanalisation channels in sub-acute;
wall thickening, webs, a shrunken vein and collaterals in chronic DVT.
"""

from __future__ import annotations

from dataclasses import dataclass

# Case mix of the VDPF paper (Table 1, by cases).
STAGE_PRIOR = {"acute": 0.19, "subacute": 0.60, "chronic": 0.21}


@dataclass(frozen=True)
class StageCues:
    ratio_mean: float            # thrombus / muscle signal, normal distribution ...
    ratio_sd: float
    ratio_clip: tuple[float, float]   # ... clipped to this range
    iso_fraction: float          # share of thrombi drawn nearly iso-intense to muscle
    vein_scale: tuple[float, float]   # lumen diameter vs. the normal vein
    edema_probability: float
    edema_mm: tuple[float, float]     # perivascular halo width
    edema_strength: tuple[float, float]
    channels: tuple[int, int]         # recanalised channels (inclusive range)
    channel_mm: tuple[float, float]   # channel diameter
    wall_thickening_mm: tuple[float, float]
    patchiness: float            # amplitude of intra-thrombus heterogeneity
    collaterals: tuple[int, int]
    swelling: tuple[float, float]     # thigh size factor on the affected side
    eccentric_probability: float      # wall-adherent rather than occlusive
    web_probability: float


CUES = {
    "acute": StageCues(
        ratio_mean=2.8, ratio_sd=1.0, ratio_clip=(1.2, 5.0), iso_fraction=0.17,
        vein_scale=(1.15, 1.5), edema_probability=0.85, edema_mm=(2.0, 8.0), edema_strength=(0.45, 0.9),
        channels=(0, 0), channel_mm=(1.0, 2.0), wall_thickening_mm=(0.0, 0.0), patchiness=0.08,
        collaterals=(0, 0), swelling=(1.02, 1.10), eccentric_probability=0.05, web_probability=0.0,
    ),
    "subacute": StageCues(
        ratio_mean=2.0, ratio_sd=0.8, ratio_clip=(0.9, 4.0), iso_fraction=0.0,
        vein_scale=(0.95, 1.25), edema_probability=0.45, edema_mm=(1.0, 3.5), edema_strength=(0.15, 0.5),
        channels=(1, 2), channel_mm=(1.0, 3.0), wall_thickening_mm=(0.0, 0.6), patchiness=0.30,
        collaterals=(0, 1), swelling=(1.0, 1.04), eccentric_probability=0.2, web_probability=0.1,
    ),
    "chronic": StageCues(
        ratio_mean=1.4, ratio_sd=0.6, ratio_clip=(0.8, 2.0), iso_fraction=0.0,
        vein_scale=(0.6, 0.95), edema_probability=0.0, edema_mm=(0.0, 0.0), edema_strength=(0.0, 0.0),
        channels=(2, 4), channel_mm=(1.0, 2.5), wall_thickening_mm=(1.0, 2.0), patchiness=0.15,
        collaterals=(2, 4), swelling=(1.0, 1.0), eccentric_probability=0.6, web_probability=0.5,
    ),
}
