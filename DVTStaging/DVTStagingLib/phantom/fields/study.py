"""`fields`: a held-out phantom style, the "external site" every model is scored on and none is trained on.

make_study(seed, stages) -> PhantomStudy, the same outputs as the training style, drawn by other code:
anatomy from random polygons, filtered noise and a warped Voronoi partition (anatomy.py), vessels as
wandering tubes (vessels.py), its own cue table (lesion.py), vessels and thrombus drawn across the slice
profile with analytic partial volume (bundle.py, compose.py), and its own scanner (acquisition.py).
"""

from __future__ import annotations

import numpy as np

from ...io.volume import Volume
from ..study import TRUTH_SCHEMA, PhantomStudy, thrombus_roi
from .acquisition import draw_contrast, draw_grid, draw_scanner, apply_scanner
from .anatomy import build_template, draw_leg, place_legs
from .bundle import cuff_texture, lesion_textures
from .compose import SIDES, cross_section_image, ensure_instances, paint_bundles, render_background
from .lesion import apply_to_vein, draw_cues, place_thrombus
from .vessels import add_collateral, draw_tree, place_arteries

STYLE = "fields"
Z_LO, Z_HI = -390.0, 20.0           # thigh span the model draws (mm, groin at 0)
STREAM = 0x6669656C                 # "fiel": keeps this style's random streams apart from any other


def make_study(seed: int, stages: list[str]) -> PhantomStudy:
    """One study with a thrombus of each given stage (0-2, one per leg), deterministic per seed."""
    if len(stages) > 2:
        raise ValueError("the fields style draws at most two thrombi (one per leg)")

    def rng(k: int) -> np.random.Generator:
        return np.random.default_rng([STREAM, int(seed), k])

    r = rng(0)
    first = "left" if r.random() < 0.6 else "right"
    sides = [first, "right" if first == "left" else "left"][: len(stages)]
    cues = {side: draw_cues(rng(10 + n), stage) for n, (side, stage) in enumerate(zip(sides, stages))}

    size = float(np.clip(r.lognormal(0.0, 0.1), 0.8, 1.25))
    legs = {}
    for n, side in enumerate(SIDES):
        c = cues.get(side)
        legs[side] = draw_leg(rng(20 + n), side, size, c.swell if c else float(r.uniform(1.0, 1.02)),
                              c.sc_edema if c else 0.0)
    frames = place_legs(rng(30), [legs[s] for s in SIDES], Z_LO - 10, Z_HI + 10, table_y=float(r.uniform(60, 130)))
    trees = {side: draw_tree(rng(40 + n), legs[side], frames[side], Z_LO, Z_HI, size) for n, side in enumerate(SIDES)}

    thrombi = {}
    ordered = []
    for n, side in enumerate(sides):
        t = place_thrombus(rng(50 + n), cues[side], side, trees[side], Z_LO + 15, Z_HI - 15)
        apply_to_vein(t, trees[side])
        for c in range(cues[side].n_collaterals):
            t.collaterals.append(add_collateral(rng(60 + 10 * n + c), trees[side], t.z_top, t.z_bottom,
                                                f"collateral-{c + 1}").name)
        thrombi[side] = [(n + 1, t)]
        ordered.append(t)
    for tree in trees.values():
        place_arteries(tree)

    contrast = draw_contrast(rng(70))
    for t in ordered:
        t.ratio = float(contrast.curve(t.ratio_tissue))

    body = _body_extents(legs, frames, ordered)
    targets = _targets(trees, ordered)
    focus = sides[0] if sides else ("left" if r.random() < 0.5 else "right")
    grid, legs_in_fov = draw_grid(rng(80), body, targets, focus, len(sides) == 2, (Z_LO, Z_HI))
    scanner = draw_scanner(rng(90))

    pixel = float(np.clip(0.45 * grid.spacing[0], 0.3, 0.6))
    half = max(leg.reach for leg in legs.values()) + 6.0
    templates = {s: build_template(legs[s], pixel, contrast.tissue(), half) for s in SIDES}
    mid_z = float(grid.origin[2] + grid.matrix[2] @ (np.array(grid.shape[::-1]) - 1) / 2)
    images = {s: cross_section_image(templates[s], contrast, grid, float(frames[s].at(mid_z)[2])) for s in SIDES}
    image, labels = render_background(grid, legs, frames, images, templates)

    textures = {}
    for n, side in enumerate(SIDES):
        textures[side] = {"cuff": cuff_texture(rng(100 + n), trees[side])}
        for _, t in thrombi.get(side, []):
            textures[side][id(t)] = lesion_textures(rng(110 + n), t, trees[side])
    instances, coverage = paint_bundles(grid, image, labels, trees, thrombi, textures, contrast)
    ensure_instances(instances, labels, coverage, list(range(1, len(ordered) + 1)))

    stored = apply_scanner(image, grid, scanner, rng(120))
    offset = np.array([r.uniform(-40, 40), r.uniform(-80, 20), r.uniform(-700, 200)])
    volume = Volume(stored, grid.spacing, grid.origin + offset, grid.direction, {"source_format": "phantom"})

    rois, records = [], []
    for n, t in enumerate(ordered, start=1):
        mask = instances == n
        if not mask.any():
            raise RuntimeError(f"fields phantom seed {seed}: thrombus {n} fell outside the field of view")
        name = f"thrombus-{n}"
        margin = float(r.uniform(2.0, 5.0))         # this site's annotators draw their own margins
        rois.append(thrombus_roi(volume, mask, name, margin_mm=margin))
        records.append({
            "roi": name, "stage": t.stage, "side": t.side, "ratio": round(t.ratio, 4),
            "ratio_tissue": round(t.ratio_tissue, 4), "vein_scale": round(t.vein_scale, 4),
            "edema_mm": round(t.edema_mm, 3), "channels": len(t.channels),
            "wall_thickening_mm": round(t.wall_thickening_mm, 3), "collaterals": len(t.collaterals),
            "eccentric": t.eccentric, "small": t.small, "length_mm": round(t.length, 2), "voxels": int(mask.sum()),
            "segment": t.segment, "kind": t.kind, "webs": len(t.webs),
            "heterogeneity": round(t.heterogeneity, 3), "subcutaneous_edema": round(cues[t.side].sc_edema, 3),
            "swelling": round(cues[t.side].swell, 4), "roi_margin_mm": round(margin, 2),
        })
    truth = {
        "schema": TRUTH_SCHEMA,
        "seed": int(seed),
        "style": STYLE,
        "thrombi": records,
        "acquisition": {
            "stack": grid.stack, "storage": grid.storage, "oblique_deg": round(grid.oblique_deg, 3),
            "spacing": [round(float(s), 4) for s in grid.spacing], "slice_thickness_mm": round(grid.thickness, 3),
            "profile_samples": grid.n_sub, "psf_mm": round(grid.psf_mm, 3), "legs_in_fov": legs_in_fov,
            "voxels": int(np.prod(grid.shape)), "noise_model": scanner.noise_model, "coils": scanner.coils,
            "snr": round(scanner.snr, 2), "noise": round(1.0 / scanner.snr, 5), "gain": scanner.muscle_level,
            "bias_sd": round(scanner.bias_sd, 4), "bias_mm": round(scanner.bias_mm, 1),
            "intensity_normalisation": round(scanner.prescan, 3), "dtype": scanner.dtype,
            "rescale_slope": scanner.slope, "rescale_intercept": scanner.intercept,
            "gamma": round(contrast.gamma, 4), "saturation": round(contrast.saturation, 3),
            "fat_muscle": round(float(contrast.curve(contrast.fat)), 4),
        },
        "anatomy": {"size": round(size, 4), "thigh_radius_mm": {s: round(legs[s].radius, 2) for s in SIDES}},
    }
    return PhantomStudy(volume, labels, instances, rois, truth)


def _body_extents(legs, frames, thrombi) -> dict:
    """x/y extent of each thigh over the heights that may be imaged."""
    if thrombi:
        lo = max(min(t.z_bottom for t in thrombi) - 200, Z_LO)
        hi = min(max(t.z_top for t in thrombi) + 200, Z_HI)
    else:
        lo, hi = Z_LO, Z_HI
    out = {}
    for side, leg in legs.items():
        f = frames[side]
        z = np.arange(lo, hi, 5.0)
        cx, cy, s, _ = f.at(z)
        reach = leg.reach * s
        out[side] = (float((cx - reach).min()), float((cx + reach).max()), float((cy - reach).min()),
                     float((cy + reach).max()))
    return out


def _targets(trees, thrombi) -> np.ndarray:
    """Points (x, y, z, radius) along each thrombosed vein that the field of view must contain."""
    rows = []
    for t in thrombi:
        tube = trees[t.side].tubes[t.vessel]
        z = trees[t.side].z
        keep = np.flatnonzero((z >= t.z_bottom) & (z <= t.z_top))[::4]
        radius = tube.r[keep] + tube.wall[keep] + 6.0
        rows.append(np.stack([tube.cx[keep], tube.cy[keep], z[keep], radius], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 4))
