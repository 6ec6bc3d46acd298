"""Paper Table 4 baselines: single-image classifiers from timm on lesion crops (box + margin)."""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from .config import ModelConfig
from .vdpf import vit_backbone


class CropClassifier(nn.Module):
    """Stages a slice from its lesion crop alone; same call signature as VDPF for the trainer."""

    uses_crops = True

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.architecture == "vit":
            # The same ViT as VDPF's backbone, so the table compares fusion, not capacity.
            self.backbone = vit_backbone(cfg)
            self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        else:
            self.backbone = timm.create_model(cfg.architecture, pretrained=False, in_chans=1,
                                              num_classes=cfg.num_classes)
            self.head = None

    def forward(self, crops: torch.Tensor, _unused: torch.Tensor | None = None, need_attention: bool = False):
        if need_attention:
            raise ValueError("baseline classifiers have no cross-attention maps")
        if self.head is not None:
            return self.head(self.backbone.forward_features(crops).mean(dim=1))
        return self.backbone(crops)
