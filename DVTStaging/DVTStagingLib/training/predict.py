"""Batched prediction over a slice bank: per-slice probabilities, averaged per ROI (the paper's rule)."""

from __future__ import annotations

import numpy as np
import torch

from ..models.build import uses_crops
from .slice_bank import SliceBank


def model_inputs(model, images: torch.Tensor, masks: torch.Tensor, crops: torch.Tensor | None,
                 zoomed: torch.Tensor | None = None):
    """What the network takes: (I_G, I_L) for VDPF (I_L masked or zoomed), (crop,) for the crop baselines."""
    if uses_crops(model):
        return (crops,)
    return images, (images * masks if zoomed is None else zoomed)


@torch.inference_mode()
def predict_bank(model, bank: SliceBank, device: torch.device, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(per-slice probabilities [M, C], per-ROI mean probabilities [R, C])."""
    model.eval()
    out = []
    for start in range(0, len(bank.images), batch_size):
        inputs = [t.to(device) for t in model_inputs(model, *bank.tensors(slice(start, start + batch_size)))]
        out.append(torch.softmax(model(*inputs).float(), dim=1).cpu())
    slice_probs = torch.cat(out).numpy() if out else np.zeros((0, 3))
    return slice_probs, roi_mean(slice_probs, bank.roi_of_slice, len(bank.rois))


def roi_mean(values: np.ndarray, roi_of_slice: np.ndarray, n_rois: int) -> np.ndarray:
    """[n_rois, C]: the mean of each ROI's slice rows (the paper's per-thrombus rule)."""
    sums = np.zeros((n_rois, values.shape[1]))
    np.add.at(sums, roi_of_slice, values)
    return sums / np.maximum(np.bincount(roi_of_slice, minlength=n_rois), 1)[:, None]
