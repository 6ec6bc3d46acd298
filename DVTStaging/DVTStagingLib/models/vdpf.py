"""VDPF: a shared-weight timm ViT encodes I_G and I_L; the GLFM fuses them; a linear head stages."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
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


class ConvStemPatchEmbed(PatchEmbed):
    """timm's patch embedding with its single strided projection replaced by stride-2 3x3 convolutions
    (Xiao et al. 2021, "Early convolutions help transformers see better"); same token grid."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        in_chans, embed_dim = self.proj.in_channels, self.proj.out_channels
        layers, width = [], max(16, embed_dim // 8)
        for _ in range(int(math.log2(self.patch_size[0]))):
            layers += [nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            in_chans, width = width, width * 2
        layers.append(nn.Conv2d(in_chans, embed_dim, 1))
        self.proj = nn.Sequential(*layers)


def vit_backbone(cfg: ModelConfig) -> VisionTransformer:
    return VisionTransformer(
        img_size=cfg.input.size, patch_size=cfg.patch_size, in_chans=1, num_classes=0, global_pool="",
        class_token=False, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, drop_path_rate=cfg.drop_path,
        embed_layer=ConvStemPatchEmbed if cfg.stem == "conv" else PatchEmbed,
    )


def token_statistics(global_tokens: torch.Tensor, local_tokens: torch.Tensor) -> torch.Tensor:
    """[B, 4 * D]: each channel's mean and standard deviation over the token grid, of both views.  Low-level
    statistics of this kind (a "style" of the image) move with the scanner and the renderer, not the stage."""
    means, stds = zip(*(_mean_and_std(t) for t in (global_tokens, local_tokens)))
    return torch.cat([*means, *stds], dim=1)


def _mean_and_std(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) standard deviation over the token axis [B, L, D] -> [B, D] each.  Written out from
    the centred tokens: torch.std over the middle axis is a strided reduction, 7x slower on a CPU."""
    mean = tokens.mean(dim=1, keepdim=True)
    variance = (tokens - mean).square().sum(dim=1) / (tokens.shape[1] - 1)
    return mean.squeeze(1), variance.sqrt()


class VDPF(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = vit_backbone(cfg)          # one network, both branches
        self.glfm = GLFM(cfg)
        self.head = nn.Linear(self.glfm.out_dim, cfg.num_classes)

    def embed(self, global_images: torch.Tensor, local_images: torch.Tensor, need_attention: bool = False,
              need_layers: bool = False):
        """The fused feature vector [B, D] the head reads (also the out-of-distribution check's feature
        space), and the cross-attention maps when asked for (else None).  With need_layers, a third value:
        each encoder block's token statistics [B, blocks, 4 * embed_dim] (see `token_statistics`), the
        feature space of the site check (staging.trust)."""
        b = global_images.shape[0]
        images = torch.cat([global_images, local_images], dim=0)
        if need_layers:
            # timm's public per-block outputs; the final tokens are forward_features' (same blocks, same norm)
            tokens, per_block = self.backbone.forward_intermediates(images, norm=False, output_fmt="NLC")
            with torch.no_grad():       # the site check's numbers, never differentiated (the evidence pass)
                layers = torch.stack([token_statistics(t[:b], t[b:]) for t in per_block], dim=1)
        else:
            tokens, layers = self.backbone.forward_features(images), None
        f_g, f_l = tokens[:b], tokens[b:]
        fused, weights = self.glfm(f_g, f_l, need_weights=need_attention)
        maps = None
        if need_attention:
            g = self.cfg.grid
            # [B, heads, queries, keys] -> mean over heads and queries -> a distribution over keys.
            maps = {name: w.mean(dim=(1, 2)).reshape(b, g, g) for name, w in weights.items()}
            maps = AttentionMaps(maps["local_to_global"], maps["global_to_local"])
        return (fused.mean(dim=1), maps, layers) if need_layers else (fused.mean(dim=1), maps)

    def forward(self, global_images: torch.Tensor, local_images: torch.Tensor, need_attention: bool = False):
        """Logits [B, classes]; with need_attention also the cross-attention maps."""
        features, maps = self.embed(global_images, local_images, need_attention)
        logits = self.head(features)
        return (logits, maps) if need_attention else logits
