"""Staging a study with a catalogue model: all slices of each ROI in batches.

`answer` gives the stages (the network, the trust checks, the detector's content check); `explain` then adds
the evidence maps.  On a CPU the answer's forward runs with gradients from the view slices and is kept, so
the evidence pass is only a backward pass (one forward, not two); elsewhere it runs under inference_mode
and the evidence pass makes its own.  The probabilities are the same either way (the same operations on the
same inputs; tests compare them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import Cancelled, UserError
from ..core.progress import Progress
from ..core.stages import INDETERMINATE, STAGES
from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models.build import build_model, uses_crops
from ..models.catalog import ModelEntry, load_weights, resolve
from ..models.config import ModelConfig
from ..models.devices import resolve_device
from .content import content_check
from .evidence import evidence_from_graph, evidence_maps, model_inputs_from_planes, view_planes
from .graph_budget import GraphBudget
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
    site_score: float | None = None      # staging.trust: the site check's (token statistics of every block)
    thrombus_probability: float | None = None   # staging.content: the detector's, inside the box
    thrombus_signal: float | None = None        # staging.content: raw intensity of the thrombus it found there
    reason: str | None = None            # why the ROI is indeterminate (None: it is staged)
    evidence: object = None              # [n, rows, cols] view-slice evidence maps, when computed
    graph: list | None = None            # (view slices, logits) per batch of a forward kept for the evidence

    def stage(self, classes) -> str:
        return INDETERMINATE if self.reason else classes[int(np.argmax(self.probabilities))]


KEEP_GRAPH_BYTES = 1 << 30    # what a study's kept forwards may hold for the evidence pass (staging.graph_budget)


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
        # No weight gradients are ever taken here: the evidence pass differentiates by the input only, and its
        # forward then keeps no activations for the weights (less memory, a faster backward).
        self.model.requires_grad_(False)
        # Memory the answer's forward may keep for the evidence pass (see keeps_graph); 0: never keep it.
        self.keep_graph_bytes = KEEP_GRAPH_BYTES
        self.load_seconds = time.perf_counter() - started

    @property
    def batch_size(self) -> int:
        return 64 if self.device.type == "cuda" else 32

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _run(self, study: StudyView, roi: BoxROI, want_attention: bool, cancel=None,
             budget: GraphBudget | None = None) -> ROIResult:
        """One ROI's answer; with a `budget` (not yet spent) its forward is kept for the evidence pass."""
        crops = uses_crops(self.model)
        keep = budget is not None and not budget.exceeded and not crops and self.explains
        with torch.inference_mode():
            pairs = slice_pairs(study, roi, images=not keep)
            crop_images = lesion_crops(study, roi, self.cfg.crop_margin_px) if crops else None
        attention_maps = want_attention and not crops
        probs, features, layers, maps = [], [], [], {"local_to_global": [], "global_to_local": []}
        graph = [] if keep else None
        for start in range(0, len(pairs), self.batch_size):
            if cancel is not None and cancel():
                raise Cancelled()
            part = slice(start, start + self.batch_size)
            if graph is not None:
                planes = view_planes(study, pairs, part, self.device)
                with torch.enable_grad(), self._autocast(), budget.counting():
                    logits, att, feats, stats = self._forward(model_inputs_from_planes(study, pairs, planes, part),
                                                              attention_maps)
                graph.append((planes, logits))
                if budget.exceeded:
                    graph = None        # the evidence pass runs its own forward (the same numbers, more time)
            else:
                with torch.inference_mode(), self._autocast():
                    if crop_images is not None:
                        inputs = (crop_images[part].to(self.device),)
                    elif pairs.global_images is None:     # a kept forward went over its budget: no graph now
                        inputs = model_inputs_from_planes(study, pairs, view_planes(study, pairs, part, self.device,
                                                                                    grad=False), part)
                    else:
                        inputs = (pairs.global_images[part].to(self.device),
                                  pairs.local_images[part].to(self.device))
                    logits, att, feats, stats = self._forward(inputs, attention_maps)
            if att is not None:
                maps["local_to_global"].append(att.local_to_global.detach().float().cpu())
                maps["global_to_local"].append(att.global_to_local.detach().float().cpu())
            if feats is not None:
                features.append(feats.detach().float().cpu())
            if stats is not None:
                layers.append(stats.detach().float().cpu())
            probs.append(torch.softmax(logits.detach().float() / self.trust.temperature, dim=1).cpu())
        slice_probs = torch.cat(probs).numpy().astype(np.float64)
        attention = {k: torch.cat(v) for k, v in maps.items() if v}
        roi_probs = slice_probs.mean(axis=0)
        ood = self.trust.roi_ood_score(torch.cat(features).numpy()) if features else None
        site = self.trust.roi_site_score(torch.cat(layers).numpy()) if layers else None
        return ROIResult(roi, roi_probs, slice_probs, pairs, attention, ood_score=ood, site_score=site,
                         reason=self.trust.decide(roi_probs, ood, site), graph=graph)

    def _forward(self, inputs, want_attention: bool):
        """(logits, attention maps or None, fused features or None, the blocks' token statistics or None:
        only for a model whose trust has a site check)."""
        embed = getattr(self.model, "embed", None)
        if embed is None:
            return self.model(*inputs), None, None, None
        if self.trust.site_threshold is None:
            features, att = embed(*inputs, need_attention=want_attention)
            return self.model.head(features), att, features, None
        features, att, stats = embed(*inputs, need_attention=want_attention, need_layers=True)
        return self.model.head(features), att, features, stats

    def warm_up(self) -> None:
        """A forward (and, where the answer keeps its forward, a backward) pass on random slices now: a
        long-lived process (the staging service) pays the first calls' set-up before its first request."""
        size = self.cfg.input.size
        x = torch.rand(2, 1, size, size, device=self.device)
        inputs = (x,) if uses_crops(self.model) else (x, x)
        with torch.inference_mode(), self._autocast():
            self._forward(inputs, self.explains)
        if self.keeps_graph:
            x.requires_grad_(True)
            with torch.enable_grad():
                logits, _, _, _ = self._forward((x, x), True)
                torch.autograd.grad(logits.sum(), x)

    @property
    def explains(self) -> bool:
        """Whether evidence maps can be computed (VDPF; the crop baselines have no slice-pair inputs)."""
        return hasattr(self.model, "embed")

    @property
    def keeps_graph(self) -> bool:
        """Whether the answer's forward is run with gradients and kept for the evidence pass: on a CPU (the
        evidence pass runs in fp32, as the answer's forward does there) and not behind the service's batching
        executor, which batches gradient-free calls only."""
        return self.explains and self.device.type == "cpu" and self.keep_graph_bytes > 0

    def answer(self, volume: Volume, rois: list[BoxROI], want_attention: bool = True, cancel=None,
               show_progress: bool = True, detector=None,
               keep_graph: bool = False) -> tuple[StudyView, list[ROIResult]]:
        """Stage each ROI (probabilities, trust, the detector's content check): the answer, without the
        evidence maps.  keep_graph: keep each ROI's forward for `explain` (see `keeps_graph`)."""
        study = prepare_study(volume, self.cfg.input)
        progress = Progress("stage", len(rois), enabled=show_progress)
        # One budget for the study: the kept forwards of all its ROIs wait together for the evidence pass.
        budget = GraphBudget(self.keep_graph_bytes, self.model) if keep_graph and self.keeps_graph else None
        results = []
        for roi in rois:
            if cancel is not None and cancel():
                raise Cancelled()
            # The content check runs first, before the network's forward (kept, some 4 MB a slice) fills
            # memory: its network then took 0.28 s instead of 0.40 s of CPU time for a 24-slice check.  Its
            # answer is used for an ROI the trust checks let through, as before.
            check = content_check(detector, volume, roi, study=study) if detector is not None else None
            result = self._run(study, roi, want_attention, cancel, budget)
            if check is not None:
                result.thrombus_signal = check.signal
                if result.reason is None:
                    result.thrombus_probability, result.reason = check.probability, check.reason
            results.append(result)
            progress.update()
        return study, results

    def explain(self, study: StudyView, results: list[ROIResult], cancel=None) -> None:
        """Each ROI's evidence map for its staged class (`result.evidence`), from its kept forward if any."""
        if not self.explains:
            return
        for result in results:
            if cancel is not None and cancel():
                raise Cancelled()
            target = int(np.argmax(result.probabilities))
            if result.graph is not None:
                result.evidence = evidence_from_graph(study, result.graph, target)
            else:
                result.evidence = evidence_maps(self, study, result.pairs, target, cancel=cancel)
            result.graph = None         # frees the forward's saved tensors

    def stage(self, volume: Volume, rois: list[BoxROI], want_attention: bool = True, cancel=None,
              show_progress: bool = True, want_evidence: bool = False,
              detector=None) -> tuple[StudyView, list[ROIResult]]:
        """Stage each ROI; with a `detector` (detection.detector.Detector) an ROI in which it sees no
        thrombus-like voxel is answered indeterminate (staging.content); want_evidence: with the evidence maps."""
        study, results = self.answer(volume, rois, want_attention, cancel, show_progress, detector,
                                     keep_graph=want_evidence)
        if want_evidence:
            self.explain(study, results, cancel)
        return study, results
