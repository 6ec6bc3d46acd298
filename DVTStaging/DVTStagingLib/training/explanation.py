"""How well the heat maps point at the evidence, measured against the phantom's tissue labels.

For each staged ROI and each map (the lesion evidence; the paper's local-to-global cross-attention):
- the share of the map's mass on each tissue (thrombus, vein, muscle, edema, ... fat, bone, air);
- the pointing game: is the map's peak inside the ROI box grown by POINTING_MARGIN_MM?
And the deletion test of faithfulness for the evidence map: replacing the top-evidence pixels (as many
as the ROI box covers on each slice) with the slice's median must lower the predicted stage's
probability more than replacing the same region shifted to random places.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.segmentation import (
    ARTERY,
    BONE,
    EDEMA,
    FAT,
    MUSCLE,
    SKIN,
    THROMBUS,
    VEIN,
    VEIN_WALL,
)
from ..staging.attention import MAP_KEYS, token_maps_in_view
from ..staging.evidence import model_inputs_from_planes

POINTING_MARGIN_MM = 10.0
TISSUE_GROUPS = {"thrombus": (THROMBUS,), "vein": (VEIN, VEIN_WALL), "muscle": (MUSCLE,), "edema": (EDEMA,),
                 "artery": (ARTERY,), "fat": (FAT,), "bone": (BONE,), "skin": (SKIN,), "air": (0,)}
RELEVANT = ("thrombus", "vein", "muscle", "edema")       # where the paper's cues lie
MAPS = ("evidence", "local-to-global")


def view_maps(study, result) -> dict[str, np.ndarray]:
    """Each map of one ROI as [n, rows, cols] on the ROI's view slices (non-negative)."""
    maps = {}
    if result.evidence is not None:
        maps["evidence"] = result.evidence.numpy()
    attention = result.attention.get(MAP_KEYS["local-to-global"])
    if attention is not None:
        maps["local-to-global"] = token_maps_in_view(study, result, "local-to-global", attention).clamp(min=0).numpy()
    return maps


def peak_inside_box(study, result, heat: np.ndarray, margin_mm: float = POINTING_MARGIN_MM) -> bool:
    n, r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    k, j, i = study.orientation.array_index((result.pairs.view_slices[n], r, c), study.scaled.shape)
    ras = study.volume.ijk_to_ras_points(np.array([[i, j, k]], float))
    return bool(result.roi.contains_ras(ras, tol=margin_mm)[0])


def tissue_shares(labels_view: np.ndarray, heat: np.ndarray) -> dict[str, float]:
    total = float(heat.sum())
    if total <= 0:
        return {name: 0.0 for name in TISSUE_GROUPS}
    return {name: float(heat[np.isin(labels_view, values)].sum() / total) for name, values in TISSUE_GROUPS.items()}


def roi_explanation(study, result, labelmap: np.ndarray | None) -> dict:
    """{map: {"hit": bool, "shares": {...} or None}} for one staged ROI."""
    labels_view = None if labelmap is None else study.orientation.apply(labelmap)[result.pairs.view_slices]
    out = {}
    for name, heat in view_maps(study, result).items():
        out[name] = {"hit": peak_inside_box(study, result, heat),
                     "shares": None if labels_view is None else tissue_shares(labels_view, heat)}
    return out


def summarise(per_roi: list[dict]) -> dict:
    """Mean tissue shares and the pointing-game hit rate of each map over the ROIs."""
    summary = {}
    for name in MAPS:
        rows = [r[name] for r in per_roi if name in r]
        if not rows:
            continue
        shares = [r["shares"] for r in rows if r["shares"] is not None]
        mean = {t: float(np.mean([s[t] for s in shares])) for t in TISSUE_GROUPS} if shares else {}
        summary[name] = {"rois": len(rows), "pointing_hit_rate": float(np.mean([r["hit"] for r in rows])),
                         "pointing_margin_mm": POINTING_MARGIN_MM, "mass_share": mean,
                         "mass_share_relevant": float(sum(mean.get(t, 0.0) for t in RELEVANT)) if mean else None}
    return summary


@torch.no_grad()
def _class_probability(stager, study, pairs, planes: np.ndarray, target: int) -> float:
    probs = []
    for start in range(0, len(pairs), 32):
        part = slice(start, start + 32)
        p = torch.from_numpy(np.ascontiguousarray(planes[part])).to(stager.device)
        logits = stager.model(*model_inputs_from_planes(study, pairs, p, part))
        probs.append(torch.softmax(logits.float() / stager.trust.temperature, dim=1)[:, target].cpu())
    return float(torch.cat(probs).mean())


def deletion_test(stager, study, result, draws: int = 5, seed: int = 0) -> dict:
    """Probability drop of the predicted stage when the top-evidence region is replaced by the slice
    median, against the same region moved to random places (mean over `draws`)."""
    pairs = result.pairs
    target = int(np.argmax(result.probabilities))
    planes = study.scaled[pairs.view_slices].astype(np.float32)
    box = study.orientation.apply(result.roi.voxel_mask(study.volume))[pairs.view_slices]
    heat = result.evidence.numpy()
    top = np.zeros(planes.shape, bool)
    for n in range(len(planes)):
        k = max(int(box[n].sum()), 1)
        top[n].flat[np.argsort(heat[n], axis=None)[-k:]] = True
    median = np.median(planes, axis=(1, 2), keepdims=True)

    def deleted(mask):
        return np.where(mask, median, planes)

    base = _class_probability(stager, study, pairs, planes, target)
    drop_top = base - _class_probability(stager, study, pairs, deleted(top), target)
    rng = np.random.default_rng(seed)
    rows, cols = planes.shape[1:]
    drops = []
    for _ in range(draws):
        shift = (int(rng.integers(rows // 6, rows - rows // 6)), int(rng.integers(cols // 6, cols - cols // 6)))
        moved = np.roll(top, shift, axis=(1, 2))
        drops.append(base - _class_probability(stager, study, pairs, deleted(moved), target))
    return {"probability": base, "drop_top_evidence": drop_top, "drop_random_region": float(np.mean(drops))}


def explain_cases(dataset, cases, stager, deletion_draws: int = 5) -> dict:
    """The `explanation` section of metrics.json: both maps on every labeled ROI of `cases`."""
    from ..core.progress import Progress
    from ..io.roi import read_rois
    from ..io.segmentation import read_segmentation
    from ..io.volume import read_volume

    per_roi, deletions = [], []
    progress = Progress("explain", len(cases))
    for case in cases:
        volume = read_volume(dataset.path(case.image))
        labelmap = None
        if case.segmentation:
            seg = read_segmentation(dataset.path(case.segmentation))
            labelmap = seg.labelmap if seg.same_grid(volume) else None
        rois = [roi for f in case.rois for roi in read_rois(dataset.path(f)) if case.stage_of(roi.name)]
        if rois:
            study, results = stager.stage(volume, rois, show_progress=False, want_evidence=True)
            for result in results:
                per_roi.append(roi_explanation(study, result, labelmap))
                deletions.append(deletion_test(stager, study, result, deletion_draws))
        progress.update()
    summary = summarise(per_roi)
    if deletions:
        top = np.array([d["drop_top_evidence"] for d in deletions])
        rand = np.array([d["drop_random_region"] for d in deletions])
        summary["evidence_deletion"] = {
            "rois": len(deletions), "region": "top-evidence pixels, as many as the ROI box covers per slice, "
                                              "replaced by the slice median",
            "mean_drop_top_evidence": float(top.mean()), "mean_drop_random_region": float(rand.mean()),
            "share_of_rois_top_beats_random": float((top > rand).mean()), "random_draws": deletion_draws}
    summary["maps"] = {"evidence": "evidence.nrrd: |gradient x input| of the predicted stage's centred logit",
                       "local-to-global": "attention.nrrd: the paper's cross-attention, where the lesion's "
                                          "tokens looked in the whole slice"}
    return summary
