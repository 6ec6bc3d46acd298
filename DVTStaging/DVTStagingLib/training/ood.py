"""Inputs the staging model must refuse (answer indeterminate), and how often it does.

Synthetic volumes (seeded): pure noise, smoothed-noise blobs, simple geometry (a bright tube in flat
tissue, a sphere), a brain-like head; real brain MR files given by the caller (e.g. Debian's
mricron-data T1 templates); and phantom studies with the ROI moved off the thrombus onto a normal vein
or onto muscle.  Each gets an ROI (the centre for synthetic volumes) and is staged exactly as `stage`
does it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io.roi import BoxROI
from ..io.volume import Volume

SHAPE = (48, 160, 160)           # [k, j, i]
SPACING = (1.0, 1.0, 3.0)        # i, j, k mm (an axial BTI-like grid)
ROI_MM = 14.0


def _volume(array: np.ndarray, spacing=SPACING) -> Volume:
    return Volume(array.astype(np.float32), np.array(spacing, float), np.zeros(3), np.eye(3))


def noise_volume(rng: np.random.Generator) -> Volume:
    return _volume(rng.normal(500, 150, SHAPE).clip(0))


def smoothed_noise_volume(rng: np.random.Generator) -> Volume:
    blobs = ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), sigma=(1.5, 5, 5))
    return _volume((blobs - blobs.min()) / np.ptp(blobs) * 900 + rng.normal(0, 20, SHAPE))


def tube_volume(rng: np.random.Generator) -> Volume:
    _, j, i = np.indices(SHAPE)
    radius = rng.uniform(4, 8)
    tube = (j - SHAPE[1] / 2) ** 2 + (i - SHAPE[2] / 2) ** 2 < radius ** 2
    array = np.full(SHAPE, rng.uniform(200, 400)) + tube * rng.uniform(400, 900)
    return _volume(array + rng.normal(0, 15, SHAPE))


def sphere_volume(rng: np.random.Generator) -> Volume:
    k, j, i = np.indices(SHAPE)
    r2 = ((k - SHAPE[0] / 2) * 3) ** 2 + (j - SHAPE[1] / 2) ** 2 + (i - SHAPE[2] / 2) ** 2
    array = np.where(r2 < rng.uniform(15, 40) ** 2, rng.uniform(600, 1000), rng.uniform(50, 300))
    return _volume(array + rng.normal(0, 15, SHAPE))


def brain_like_volume(rng: np.random.Generator) -> Volume:
    """A head: scalp and skull rings, grey matter, white matter, dark ventricles (T1-like contrast)."""
    k, j, i = np.indices(SHAPE).astype(float)
    z, y, x = (k - SHAPE[0] / 2) * 3 / 60, (j - SHAPE[1] / 2) / 70, (i - SHAPE[2] / 2) / 58
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    array = np.zeros(SHAPE)
    array[r < 1.0] = 700                         # scalp
    array[r < 0.93] = 120                        # skull (dark on T1)
    array[r < 0.86] = 500                        # grey matter
    array[r < 0.72] = 800                        # white matter
    vent = (np.abs(x) - 0.12) ** 2 / 0.08 ** 2 + y ** 2 / 0.3 ** 2 + z ** 2 / 0.25 ** 2 < 1
    array[vent] = 150                            # ventricles (CSF dark)
    array *= 1 + 0.1 * ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), 6)
    return _volume(array + rng.normal(0, 20, SHAPE))


SYNTHETIC = {"noise": noise_volume, "smoothed-noise": smoothed_noise_volume, "tube": tube_volume,
             "sphere": sphere_volume, "brain-like": brain_like_volume}


def centre_roi(volume: Volume, size_mm: float = ROI_MM, name: str = "centre") -> BoxROI:
    """A size_mm cube at the volume's centre, axis-aligned in voxel space."""
    centre = (np.array(volume.shape_ijk) - 1) / 2
    half = size_mm / 2 / volume.spacing
    return BoxROI.from_ijk_extent(volume, np.floor(centre - half), np.ceil(centre + half), name)


def roi_on_label(volume: Volume, labelmap: np.ndarray, label: int, avoid: np.ndarray, rng: np.random.Generator,
                 name: str, size_mm: float = ROI_MM) -> BoxROI | None:
    """A size_mm cube centred on a random voxel of `label`, at least 20 mm from every `avoid` voxel."""
    far = ndimage.distance_transform_edt(~avoid, sampling=volume.spacing[::-1]) > 20 if avoid.any() \
        else np.ones_like(avoid)
    candidates = np.argwhere((labelmap == label) & far)
    if len(candidates) == 0:
        return None
    k, j, i = candidates[rng.integers(len(candidates))]
    half = size_mm / 2 / volume.spacing
    centre = np.array([i, j, k], float)
    size = np.array(volume.shape_ijk) - 1
    return BoxROI.from_ijk_extent(volume, np.clip(np.floor(centre - half), 0, size),
                                  np.clip(np.ceil(centre + half), 0, size), name)


def ood_inputs(seed: int = 0, per_kind: int = 4, brains: list[Path] = (), phantom=None, phantom_cases: int = 10):
    """(kind, label, volume, roi) for every OOD input; `phantom` a Dataset for the moved-ROI kinds."""
    from ..io.segmentation import MUSCLE, THROMBUS, VEIN, read_segmentation
    from ..io.volume import read_volume

    rng = np.random.default_rng(seed)
    for kind, make in SYNTHETIC.items():
        for n in range(per_kind):
            volume = make(rng)
            yield kind, f"{kind}-{n}", volume, centre_roi(volume)
    for path in brains:
        volume = read_volume(path)
        yield "brain-mr", Path(path).name, volume, centre_roi(volume)
    if phantom is not None:
        for case in list(phantom.cases)[:phantom_cases]:
            if not case.segmentation:
                continue
            volume = read_volume(phantom.path(case.image))
            labels = read_segmentation(phantom.path(case.segmentation)).labelmap
            thrombus = labels == THROMBUS
            for kind, label in (("normal-vein", VEIN), ("muscle", MUSCLE)):
                roi = roi_on_label(volume, labels, label, thrombus, rng, kind)
                if roi is not None:
                    yield kind, f"{case.id}:{kind}", volume, roi


def evaluate_ood(stager, inputs, detector=None) -> dict:
    """Stage every OOD input; the share answered 'indeterminate', per kind and overall."""
    from ..core.errors import UserError
    from ..core.stages import INDETERMINATE

    rows = []
    for kind, label, volume, roi in inputs:
        try:
            _, results = stager.stage(volume, [roi], want_attention=False, show_progress=False, detector=detector)
        except UserError as exc:        # refused before staging (e.g. an image with no content): also an abstention
            rows.append({"kind": kind, "input": label, "stage": INDETERMINATE, "reason": str(exc), "ood_score": None})
            continue
        r = results[0]
        rows.append({"kind": kind, "input": label, "stage": r.stage(stager.classes), "reason": r.reason,
                     "ood_score": r.ood_score, "site_score": r.site_score,
                     "probabilities": dict(zip(stager.classes, map(float, r.probabilities)))})
    kinds = sorted({r["kind"] for r in rows})
    per_kind = {k: {"n": sum(r["kind"] == k for r in rows),
                    "abstained": sum(r["kind"] == k and r["stage"] == INDETERMINATE for r in rows)} for k in kinds}
    total = len(rows)
    abstained = sum(r["stage"] == INDETERMINATE for r in rows)
    return {"n": total, "abstained": abstained, "indeterminate_rate": abstained / total if total else 0.0,
            "per_kind": per_kind, "inputs": rows}
