"""VDPF: a shared-weight timm ViT encodes I_G and I_L; the GLFM fuses them; a linear head stages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .config import ModelConfig
from .fusion import GLFM


@dataclass
class AttentionMaps:
    """Cross-attention per slice on the token grid, averaged over heads and queries, each map summing to 1.

    local_to_global: how much the lesion's tokens attend to each global token.
    global_to_local: how much the global tokens attend to each fused local token.
    """

    local_to_global: torch.Tensor    # [B, grid, grid]
    global_to_local: torch.Tensor


def vit_backbone(cfg: ModelConfig) -> VisionTransformer:
    return VisionTransformer(
        img_size=cfg.input.size, patch_size=cfg.patch_size, in_chans=1, num_classes=0, global_pool="",
        class_token=False, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, drop_path_rate=cfg.drop_path,
    )


class VDPF(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = vit_backbone(cfg)          # one network, both branches
        self.glfm = GLFM(cfg)
        self.head = nn.Linear(self.glfm.out_dim, cfg.num_classes)

    def forward(self, global_images: torch.Tensor, local_images: torch.Tensor, need_attention: bool = False):
        """Logits [B, classes]; with need_attention also the cross-attention maps."""
        b = global_images.shape[0]
        tokens = self.backbone.forward_features(torch.cat([global_images, local_images], dim=0))
        f_g, f_l = tokens[:b], tokens[b:]
        fused, weights = self.glfm(f_g, f_l, need_weights=need_attention)
        logits = self.head(fused.mean(dim=1))
        if not need_attention:
            return logits
        g = self.cfg.grid
        # [B, heads, queries, keys] -> mean over heads and queries -> a distribution over keys.
        maps = {name: w.mean(dim=(1, 2)).reshape(b, g, g) for name, w in weights.items()}
        return logits, AttentionMaps(maps["local_to_global"], maps["global_to_local"])
