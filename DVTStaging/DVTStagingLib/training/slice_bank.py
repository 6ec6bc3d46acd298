"""All slice pairs of a dataset split, prepared once and kept in memory (and cached on disk).

Images are stored as uint8 (scaled intensity x 100, so 0..2.55 covers the
model's 0..clip_max range); masks as uint8 0..255.  A cache file beside the
dataset is keyed by the input spec and the case files' sizes and times, and
is a plain `.npz` (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.progress import Progress
from ..io.dataset import Case, Dataset
from ..io.roi import read_rois
from ..io.volume import read_volume
from ..models.config import InputSpec
from ..staging.slices import evenly_spaced, lesion_crops, prepare_study, slice_pairs

IMAGE_SCALE = 100.0
MAX_SLICES_PER_ROI = 48     # evenly spaced; long thrombi would otherwise dominate training


@dataclass
class SliceBank:
    images: np.ndarray        # [M, S, S] uint8
    masks: np.ndarray         # [M, S, S] uint8
    crops: np.ndarray | None  # [M, S, S] uint8 lesion crops (baselines)
    roi_of_slice: np.ndarray  # [M] index into rois
    rois: list[dict]          # {"case", "roi", "stage", "label", "split"}
    zoomed: np.ndarray | None = None   # [M, S, S] uint8 zoomed local views (InputSpec.local_view "zoom")

    def _keep(self, keep) -> tuple:
        return (self.images[keep], self.masks[keep], None if self.crops is None else self.crops[keep])

    def _kept_zoom(self, keep):
        return None if self.zoomed is None else self.zoomed[keep]

    def roi_labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.rois], dtype=np.int64)

    def subset(self, roi_indices) -> "SliceBank":
        roi_indices = list(roi_indices)
        remap = {old: new for new, old in enumerate(roi_indices)}
        keep = np.isin(self.roi_of_slice, roi_indices)
        return SliceBank(*self._keep(keep), np.array([remap[r] for r in self.roi_of_slice[keep]], dtype=np.int64),
                         [self.rois[i] for i in roi_indices], self._kept_zoom(keep))

    def thinned(self, per_roi: int) -> "SliceBank":
        """At most `per_roi` evenly spaced slices of each ROI."""
        keep = np.zeros(len(self.roi_of_slice), bool)
        for r in range(len(self.rois)):
            idx = np.flatnonzero(self.roi_of_slice == r)
            if len(idx):
                keep[idx[evenly_spaced(len(idx), per_roi)]] = True
        return SliceBank(*self._keep(keep), self.roi_of_slice[keep], self.rois, self._kept_zoom(keep))

    def split(self, name: str) -> "SliceBank":
        return self.subset([i for i, r in enumerate(self.rois) if r["split"] == name])

    def tensors(self, index) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Float tensors [n, 1, S, S] of global images, box masks, crops and zoomed views for slice indices."""
        def scaled(array, scale):
            return None if array is None else torch.from_numpy(array[index]).float().div_(scale)[:, None]

        return (scaled(self.images, IMAGE_SCALE), scaled(self.masks, 255.0), scaled(self.crops, IMAGE_SCALE),
                scaled(self.zoomed, IMAGE_SCALE))


def _to_uint8(t: torch.Tensor, scale: float) -> np.ndarray:
    return (t[:, 0] * scale).round_().clamp_(0, 255).to(torch.uint8).numpy()


def roi_items(study, roi, meta: dict, with_crops: bool, crop_margin: int) -> dict:
    """Evenly spaced slices of one ROI of a prepared study, stored compactly."""
    pairs = slice_pairs(study, roi)
    pick = evenly_spaced(len(pairs), MAX_SLICES_PER_ROI)
    crops = _to_uint8(lesion_crops(study, roi, crop_margin)[pick], IMAGE_SCALE) if with_crops else None
    zoomed = None if pairs.zoomed_images is None else _to_uint8(pairs.zoomed_images[pick], IMAGE_SCALE)
    return {"meta": meta, "images": _to_uint8(pairs.global_images[pick], IMAGE_SCALE),
            "masks": _to_uint8(pairs.box_masks[pick], 255.0), "crops": crops, "zoomed": zoomed}


def _case_slices(root: str, case: dict, spec: dict, classes: list[str], with_crops: bool, crop_margin: int):
    torch.set_num_threads(1)
    spec = InputSpec.from_dict(spec)
    root = Path(root)
    case = Case.from_json(case)
    study = prepare_study(read_volume(root / case.image), spec)
    out = []
    for roi_file in case.rois:
        for roi in read_rois(root / roi_file):
            stage = case.stage_of(roi.name)
            if stage is not None:
                meta = {"case": case.id, "roi": roi.name, "stage": stage, "label": classes.index(stage),
                        "split": case.split}
                out.append(roi_items(study, roi, meta, with_crops, crop_margin))
    return out


def bank_from_items(items: list[dict], with_crops: bool) -> SliceBank:
    if not items:
        raise ValueError("no labeled ROI")
    return SliceBank(
        np.concatenate([i["images"] for i in items]), np.concatenate([i["masks"] for i in items]),
        np.concatenate([i["crops"] for i in items]) if with_crops else None,
        np.concatenate([np.full(len(i["images"]), n) for n, i in enumerate(items)]).astype(np.int64),
        [i["meta"] for i in items],
        np.concatenate([i["zoomed"] for i in items]) if items[0].get("zoomed") is not None else None,
    )


def _cache_key(dataset: Dataset, spec: InputSpec, with_crops: bool, crop_margin: int) -> str:
    h = hashlib.sha256(json.dumps([spec.to_dict(), with_crops, crop_margin, MAX_SLICES_PER_ROI]).encode())
    for case in dataset.cases:
        h.update(json.dumps(case.to_json(), sort_keys=True).encode())
        for rel in [case.image, *case.rois]:
            st = os.stat(dataset.path(rel))
            h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build_slice_bank(dataset: Dataset, spec: InputSpec, with_crops: bool = False, crop_margin: int = 5,
                     workers: int | None = None, cache: bool = True) -> SliceBank:
    """Slice pairs of every labeled ROI of every case (all splits)."""
    cache_path = dataset.root / ".dvt-cache" / f"slices-{_cache_key(dataset, spec, with_crops, crop_margin)}.npz"
    if cache and cache_path.is_file():
        return load_bank(cache_path, with_crops)
    cases = [c.to_json() for c in dataset.cases]
    args = (str(dataset.root),)
    classes = list(dataset.classes)
    progress = Progress("slices", len(cases))
    workers = max(1, min(workers or os.cpu_count() or 1, len(cases)))
    results = []
    if workers == 1:
        for c in cases:
            results.append(_case_slices(*args, c, spec.to_dict(), classes, with_crops, crop_margin))
            progress.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_case_slices, *args, c, spec.to_dict(), classes, with_crops, crop_margin)
                       for c in cases]
            for f in futures:
                results.append(f.result())
                progress.update()
    bank = bank_from_items([item for per_case in results for item in per_case], with_crops)
    if cache:
        try:
            save_bank(cache_path, bank)
        except OSError:
            pass    # a read-only dataset just goes without a cache
    return bank


def save_bank(path: Path, bank: SliceBank) -> None:
    """A plain .npz (no pickle), written under another name and renamed: never a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    empty = np.zeros(0, np.uint8)
    np.savez(tmp, images=bank.images, masks=bank.masks, crops=bank.crops if bank.crops is not None else empty,
             roi_of_slice=bank.roi_of_slice, rois=np.array(json.dumps(bank.rois)),
             zoomed=bank.zoomed if bank.zoomed is not None else empty)
    os.replace(tmp, path)


def load_bank(path: Path, with_crops: bool) -> SliceBank:
    with np.load(path, allow_pickle=False) as z:
        zoomed = z["zoomed"] if "zoomed" in z.files and z["zoomed"].size else None
        return SliceBank(z["images"], z["masks"], z["crops"] if with_crops else None, z["roi_of_slice"],
                         json.loads(str(z["rois"])), zoomed)
