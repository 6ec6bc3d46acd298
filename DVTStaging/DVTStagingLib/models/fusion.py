"""Global-Local Fusion Module (GLFM) of VDPF, as the paper writes it.

  F_G-S = SelfAttn(F_G),  F_L-S = SelfAttn(F_L)
  F_L-G   = Softmax(Q(F_L-S) K(F_G)^T / sqrt d) V(F_G) + F_L-S          (eq. 1)
  F_L-G-M = F_L-G + L2(GELU(L1(F_L-G)))                                 (eq. 2, with its residual)
  F_Cross = Softmax(Q(F_G) K(F_L-G-M)^T / sqrt d) V(F_L-G-M) + F_G      (eq. 3)
  F_C = concat_D(F_G-S, F_L-S, F_Cross) -> FFFN -> mean over tokens -> Linear

The ablations of paper Tables 2-3 are switches: FFFN replaced by coordinate
attention or left out, the cross-attention order swapped, feature subsets.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


class Attention(nn.Module):
    """Multi-head attention with queries from `x` and keys/values from `context`.

    Uses fused scaled-dot-product attention unless the weights are wanted.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, need_weights: bool = False):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.reshape(b, -1, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(context)), split(self.v(context))
        weights = None
        if need_weights:
            weights = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(d // h), dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), weights


class CrossAttentionBlock(nn.Module):
    """Eqs. 1-3: query side attends to the context, MLP, then the context attends back."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.first = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.second = Attention(dim, heads)

    def forward(self, query_self, context, need_weights=False):
        attended, w_first = self.first(query_self, context, need_weights)
        fused = attended + query_self                                    # eq. 1
        fused = fused + self.mlp(fused)                                  # eq. 2
        back, w_second = self.second(context, fused, need_weights)
        return back + context, w_first, w_second                         # eq. 3


class FFFN(nn.Module):
    """Feature Fusion Focus Network: token weights W_N and channel weights W_D from pooled F_C.

    F_C (B x N x D) is averaged over D (-> B x N) and over N (-> B x D); the two
    vectors are joined and encoded together (conv + GELU), split, normalised,
    and each passes a conv with a residual before a sigmoid.
    """

    def __init__(self, tokens: int, dim: int, hidden: int = 8, kernel: int = 3):
        super().__init__()
        self.tokens = tokens
        pad = kernel // 2
        self.encode = nn.Sequential(nn.Conv1d(1, hidden, kernel, padding=pad), nn.GELU())
        self.norm_n = nn.GroupNorm(1, hidden)
        self.norm_d = nn.GroupNorm(1, hidden)
        self.out_n = nn.Conv1d(hidden, 1, kernel, padding=pad)
        self.out_d = nn.Conv1d(hidden, 1, kernel, padding=pad)

    def forward(self, fc: torch.Tensor) -> torch.Tensor:
        pooled_n = fc.mean(dim=2)                                  # B x N
        pooled_d = fc.mean(dim=1)                                  # B x D
        joint = self.encode(torch.cat([pooled_n, pooled_d], dim=1)[:, None])   # B x hidden x (N + D)
        enc_n, enc_d = joint[..., : self.tokens], joint[..., self.tokens:]
        w_n = torch.sigmoid(self.out_n(self.norm_n(enc_n))[:, 0] + pooled_n)    # B x N
        w_d = torch.sigmoid(self.out_d(self.norm_d(enc_d))[:, 0] + pooled_d)    # B x D
        return fc * w_n[:, :, None] * w_d[:, None, :]


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al. 2021) on the token grid: the VDPF-CA ablation."""

    def __init__(self, dim: int, grid: int, reduction: int = 8):
        super().__init__()
        self.grid = grid
        mid = max(8, dim // reduction)
        self.reduce = nn.Sequential(nn.Conv2d(dim, mid, 1), nn.BatchNorm2d(mid), nn.Hardswish())
        self.to_h = nn.Conv2d(mid, dim, 1)
        self.to_w = nn.Conv2d(mid, dim, 1)

    def forward(self, fc: torch.Tensor) -> torch.Tensor:
        b, n, d = fc.shape
        x = fc.transpose(1, 2).reshape(b, d, self.grid, self.grid)
        along_h = x.mean(dim=3, keepdim=True)                      # B x D x H x 1
        along_w = x.mean(dim=2, keepdim=True).transpose(2, 3)      # B x D x W x 1
        y = self.reduce(torch.cat([along_h, along_w], dim=2))
        y_h, y_w = y.split([self.grid, self.grid], dim=2)
        a_h = torch.sigmoid(self.to_h(y_h))
        a_w = torch.sigmoid(self.to_w(y_w.transpose(2, 3)))
        return (x * a_h * a_w).reshape(b, d, n).transpose(1, 2)


class GLFM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, h = cfg.embed_dim, cfg.fusion_heads
        self.cfg = cfg
        self.self_global = Attention(d, h)
        self.self_local = Attention(d, h)
        self.cross = CrossAttentionBlock(d, h, cfg.mlp_ratio)
        fused_dim = d * len(cfg.features)
        tokens = cfg.grid * cfg.grid
        if cfg.fusion == "fffn":
            self.focus = FFFN(tokens, fused_dim)
        elif cfg.fusion == "coord":
            self.focus = CoordinateAttention(fused_dim, cfg.grid)
        else:
            self.focus = nn.Identity()
        self.out_dim = fused_dim

    def forward(self, f_g: torch.Tensor, f_l: torch.Tensor, need_weights: bool = False):
        # Self-attention with residuals, so each branch keeps its own tokens (the paper's F_G-S, F_L-S).
        a_g, _ = self.self_global(f_g, f_g)
        a_l, _ = self.self_local(f_l, f_l)
        f_gs, f_ls = f_g + a_g, f_l + a_l
        if self.cfg.cross_order == "local_to_global":
            f_cross, w_first, w_second = self.cross(f_ls, f_g, need_weights)
            maps = {"local_to_global": w_first, "global_to_local": w_second}
        else:   # VDPF-SC: global features query the local ones first
            f_cross, w_first, w_second = self.cross(f_gs, f_l, need_weights)
            maps = {"global_to_local": w_first, "local_to_global": w_second}
        chosen = {"global_self": f_gs, "local_self": f_ls, "cross": f_cross}
        fc = torch.cat([chosen[name] for name in self.cfg.features], dim=2)
        return self.focus(fc), (maps if need_weights else None)
