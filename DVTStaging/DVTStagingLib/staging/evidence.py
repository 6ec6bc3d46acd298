"""The lesion-evidence map: which voxels the stage was read from (gradient x input, in the input's geometry).

For each staged slice the model input is rebuilt from the view slice with differentiable operations (pad
and resize for I_G, the box mask or the zoom window for I_L), so the gradient of the predicted stage's
score (its centred logit) lands on the study's own pixels, through both branches at once.  The map is
|gradient x intensity| (Shrikumar et al. 2017; Ancona et al. 2018), smoothed over about 2 mm, then
scaled to 0..1 per ROI.  Its faithfulness is checked by deletion (tests; `dvt-staging evaluate`, training.explanation).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.errors import Cancelled
from ..io.volume import Volume
from .slices import SlicePairs, StudyView, to_model_grid

SMOOTH_MM = 2.0


def model_inputs_from_planes(study: StudyView, pairs: SlicePairs, planes: torch.Tensor, part: slice):
    """(I_G, I_L) from view slices `part` of the ROI, differentiably, exactly as `slice_pairs` builds them."""
    size = study.spec.size
    images = to_model_grid(planes, study.frame, size)
    if pairs.zoom is not None:
        return images, pairs.zoom.crop(planes, size)
    # the masks were made under inference_mode: a plain copy may enter the autograd graph
    return images, images * pairs.box_masks[part].clone().to(images.device)


def _gaussian_blur(maps: torch.Tensor, sigma_rc: tuple[float, float]) -> torch.Tensor:
    """Each [rows, cols] map smoothed by a Gaussian (3 sigma each side, edges repeated).  scipy's separable
    correlation: a tenth of the time of torch's single-channel convolution on a CPU, the same kernel."""
    from scipy import ndimage

    out = maps.detach().float().cpu().numpy()
    for axis, sigma in enumerate(sigma_rc):
        radius = max(1, round(3 * sigma))
        t = np.arange(-radius, radius + 1, dtype=np.float32)
        k = np.exp(-(t ** 2) / np.float32(2 * max(sigma, 1e-3) ** 2))
        out = ndimage.correlate1d(out, k / k.sum(), axis=axis + 1, mode="nearest")
    return torch.from_numpy(out)


def centred_logit(logits: torch.Tensor, target: int) -> torch.Tensor:
    """The target's logit minus the mean logit: the softmax's own score for the class (adding a constant to
    every logit changes no probability), without the softmax's saturation.  The gradient of the
    log-probability vanishes on every slice the model is sure of (1e-25 of its peak on most slices of a
    confident ROI), which left the map blank there; this score keeps each slice's evidence."""
    return logits[:, target] - logits.mean(dim=1)


def view_planes(study: StudyView, pairs: SlicePairs, part: slice, device, grad: bool = True) -> torch.Tensor:
    """The ROI's view slices `part`, as the leaf the evidence gradient is taken on (grad=True)."""
    planes = torch.from_numpy(np.ascontiguousarray(study.scaled[pairs.view_slices[part]])).to(device)
    return planes.requires_grad_(True) if grad else planes


def _smoothed(study: StudyView, maps: torch.Tensor) -> torch.Tensor:
    row_mm, col_mm = study.orientation.spacing[1:]
    return _gaussian_blur(maps, (SMOOTH_MM / row_mm, SMOOTH_MM / col_mm))


def evidence_maps(stager, study: StudyView, pairs: SlicePairs, target: int, batch: int = 16,
                  cancel=None) -> torch.Tensor:
    """[n, rows, cols] non-negative evidence for class `target` on each of the ROI's view slices (a forward
    and a backward pass of its own; see `evidence_from_graph` for reusing the answer's forward)."""
    model = stager.model
    out = []
    for start in range(0, len(pairs), batch):
        if cancel is not None and cancel():
            raise Cancelled()
        part = slice(start, start + batch)
        planes = view_planes(study, pairs, part, stager.device)
        with torch.enable_grad():
            logits = model(*model_inputs_from_planes(study, pairs, planes, part))
            score = centred_logit(logits.float(), target).sum()
            (grad,) = torch.autograd.grad(score, planes)
        out.append((grad * planes).abs().detach().float().cpu())
    return _smoothed(study, torch.cat(out))


def evidence_from_graph(study: StudyView, graph: list, target: int) -> torch.Tensor:
    """`evidence_maps` from the answer's own forward: `graph` holds (view slices, logits) of each batch, run
    with gradients, so only the backward pass is left.  Each slice's score depends on its own slice only, so
    the gradients are those of `evidence_maps`."""
    planes = [p for p, _ in graph]
    score = sum(centred_logit(logits.float(), target).sum() for _, logits in graph)
    grads = torch.autograd.grad(score, planes)
    maps = torch.cat([(g * p).abs().detach().float().cpu() for g, p in zip(grads, planes)])
    return _smoothed(study, maps)


def normalised(maps: torch.Tensor) -> np.ndarray:
    top = float(maps.max())
    return (maps / top).clamp_(0, 1).numpy() if top > 0 else np.zeros(tuple(maps.shape), np.float32)


def evidence_volume(study: StudyView, results) -> Volume:
    """A float32 volume in the input geometry: each ROI's evidence scaled to 0..1, 0 elsewhere (max where
    ROIs overlap)."""
    view = np.zeros(study.scaled.shape, dtype=np.float32)
    for result in results:
        if result.evidence is None:
            continue
        idx = result.pairs.view_slices
        view[idx] = np.maximum(view[idx], normalised(result.evidence))
    return study.volume.with_array(study.orientation.undo(view))
