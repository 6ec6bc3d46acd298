"""Staging a study with a catalogue model: all slices of each ROI in batches, under inference_mode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import Cancelled, UserError
from ..core.progress import Progress
from ..core.stages import INDETERMINATE, STAGES
from ..detection.view import prepare_view
from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models.build import build_model, uses_crops
from ..models.catalog import ModelEntry, load_weights, resolve
from ..models.config import ModelConfig
from ..models.devices import resolve_device
from .content import thrombus_check
from .evidence import evidence_maps
from .slices import SlicePairs, StudyView, lesion_crops, prepare_study, slice_pairs
from .trust import Trust


@dataclass
class ROIResult:
    roi: BoxROI
    probabilities: np.ndarray            # [classes], mean over slices (calibrated)
    slice_probabilities: np.ndarray      # [n, classes]
    pairs: SlicePairs
    attention: dict = field(default_factory=dict)   # map name -> [n, grid, grid] (VDPF only)
    ood_score: float | None = None       # staging.trust: distance to the training data's features
    thrombus_probability: float | None = None   # staging.content: the detector's, inside the box
    reason: str | None = None            # why the ROI is indeterminate (None: it is staged)
    evidence: object = None              # [n, rows, cols] view-slice evidence maps, when computed

    def stage(self, classes) -> str:
        return INDETERMINATE if self.reason else classes[int(np.argmax(self.probabilities))]


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
        self.trust = Trust.from_model(self.entry.card, state)   # takes the trust.* tensors out of `state`
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
        probs, features, maps = [], [], {"local_to_global": [], "global_to_local": []}
        for start in range(0, len(pairs), self.batch_size):
            if cancel is not None and cancel():
                raise Cancelled()
            part = slice(start, start + self.batch_size)
            if crops is not None:
                inputs = (crops[part].to(self.device),)
            else:
                inputs = (pairs.global_images[part].to(self.device), pairs.local_images[part].to(self.device))
            with self._autocast():
                logits, att, feats = self._forward(inputs, attention_maps)
            if att is not None:
                maps["local_to_global"].append(att.local_to_global.float().cpu())
                maps["global_to_local"].append(att.global_to_local.float().cpu())
            if feats is not None:
                features.append(feats.float().cpu())
            probs.append(torch.softmax(logits.float() / self.trust.temperature, dim=1).cpu())
        slice_probs = torch.cat(probs).numpy().astype(np.float64)
        attention = {k: torch.cat(v) for k, v in maps.items() if v}
        roi_probs = slice_probs.mean(axis=0)
        ood = self.trust.roi_ood_score(torch.cat(features).numpy()) if features else None
        return ROIResult(roi, roi_probs, slice_probs, pairs, attention, ood_score=ood,
                         reason=self.trust.decide(roi_probs, ood))

    def _forward(self, inputs, want_attention: bool):
        """(logits, attention maps or None, fused features or None)."""
        embed = getattr(self.model, "embed", None)
        if embed is None:
            return self.model(*inputs), None, None
        features, att = embed(*inputs, need_attention=want_attention)
        return self.model.head(features), att, features

    @property
    def explains(self) -> bool:
        """Whether evidence maps can be computed (VDPF; the crop baselines have no slice-pair inputs)."""
        return hasattr(self.model, "embed")

    def stage(self, volume: Volume, rois: list[BoxROI], want_attention: bool = True, cancel=None,
              show_progress: bool = True, want_evidence: bool = False,
              detector=None) -> tuple[StudyView, list[ROIResult]]:
        """Stage each ROI; with a `detector` (detection.detector.Detector) an ROI in which it sees no
        thrombus-like voxel is answered indeterminate (staging.content)."""
        study = prepare_study(volume, self.cfg.input)
        progress = Progress("stage", len(rois), enabled=show_progress)
        detector_view = prepare_view(volume, detector.spec) if detector is not None else None
        results = []
        for roi in rois:
            result = self._run(study, roi, want_attention, cancel)
            if detector is not None and result.reason is None:
                result.thrombus_probability, result.reason = thrombus_check(detector, volume, roi, detector_view)
            if want_evidence and self.explains:
                result.evidence = evidence_maps(self, study, result.pairs, int(np.argmax(result.probabilities)))
            results.append(result)
            progress.update()
        return study, results
