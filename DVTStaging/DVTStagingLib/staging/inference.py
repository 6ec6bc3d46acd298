"""Staging a study with a catalogue model: all slices of each ROI in batches, under inference_mode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import Cancelled, UserError
from ..core.progress import Progress
from ..core.stages import STAGES
from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models.build import build_model, uses_crops
from ..models.catalog import ModelEntry, load_weights, resolve
from ..models.config import ModelConfig
from ..models.devices import resolve_device
from .slices import SlicePairs, StudyView, lesion_crops, prepare_study, slice_pairs


@dataclass
class ROIResult:
    roi: BoxROI
    probabilities: np.ndarray            # [classes], mean over slices
    slice_probabilities: np.ndarray      # [n, classes]
    pairs: SlicePairs
    attention: dict = field(default_factory=dict)   # map name -> [n, grid, grid] (VDPF only)

    def stage(self, classes) -> str:
        return classes[int(np.argmax(self.probabilities))]


class Stager:
    """A loaded staging model, ready for any number of studies."""

    def __init__(self, model: str | ModelEntry | None = None, device: str = "auto"):
        started = time.perf_counter()
        self.entry: ModelEntry = model if isinstance(model, ModelEntry) else resolve(model, "staging")
        self.cfg = ModelConfig.from_dict(self.entry.card["config"])
        self.classes = list(self.entry.card.get("classes", STAGES))
        self.device = resolve_device(device)
        self.model = build_model(self.cfg)
        state = load_weights(self.entry)
        try:
            self.model.load_state_dict(state)
        except RuntimeError:
            raise UserError(f"weights {self.entry.weights_path} do not fit the network of its card "
                            f"({self.cfg.name})") from None
        self.model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started

    @property
    def batch_size(self) -> int:
        return 64 if self.device.type == "cuda" else 32

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @torch.inference_mode()
    def _run(self, study: StudyView, roi: BoxROI, want_attention: bool, cancel=None) -> ROIResult:
        pairs = slice_pairs(study, roi)
        crops = lesion_crops(study, roi, self.cfg.crop_margin_px) if uses_crops(self.model) else None
        attention_maps = want_attention and not uses_crops(self.model)
        probs, maps = [], {"local_to_global": [], "global_to_local": []}
        for start in range(0, len(pairs), self.batch_size):
            if cancel is not None and cancel():
                raise Cancelled()
            part = slice(start, start + self.batch_size)
            if crops is not None:
                inputs = (crops[part].to(self.device),)
            else:
                g = pairs.global_images[part].to(self.device)
                inputs = (g, g * pairs.box_masks[part].to(self.device))
            with self._autocast():
                out = self.model(*inputs, need_attention=True) if attention_maps else self.model(*inputs)
            if attention_maps:
                logits, att = out
                maps["local_to_global"].append(att.local_to_global.float().cpu())
                maps["global_to_local"].append(att.global_to_local.float().cpu())
            else:
                logits = out
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
        slice_probs = torch.cat(probs).numpy().astype(np.float64)
        attention = {k: torch.cat(v) for k, v in maps.items() if v}
        return ROIResult(roi, slice_probs.mean(axis=0), slice_probs, pairs, attention)

    def stage(self, volume: Volume, rois: list[BoxROI], want_attention: bool = True, cancel=None,
              show_progress: bool = True) -> tuple[StudyView, list[ROIResult]]:
        study = prepare_study(volume, self.cfg.input)
        progress = Progress("stage", len(rois), enabled=show_progress)
        results = []
        for roi in rois:
            results.append(self._run(study, roi, want_attention, cancel))
            progress.update()
        return study, results
