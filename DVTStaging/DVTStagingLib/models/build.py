"""Build a network (VDPF, its ablations or a baseline) from a ModelConfig."""

from __future__ import annotations

import torch.nn as nn

from .config import ModelConfig


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.architecture == "vdpf":
        from .vdpf import VDPF

        return VDPF(cfg)
    from .baselines import CropClassifier

    return CropClassifier(cfg)


def uses_crops(model: nn.Module) -> bool:
    return bool(getattr(model, "uses_crops", False))
