"""VDPF blocks: shapes, gradient flow, attention normalisation, ablation switches, a wiring check by overfitting."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from DVTStagingLib.core.errors import UserError
from DVTStagingLib.models.build import build_model
from DVTStagingLib.models.config import ABLATIONS, BASELINES, VDPF_TINY, ModelConfig, load_config, variant
from DVTStagingLib.models.fusion import FFFN, GLFM, Attention, CoordinateAttention, CrossAttentionBlock

CFG = VDPF_TINY
TOKENS = CFG.grid * CFG.grid


def _grads_reach(module: torch.nn.Module) -> list[str]:
    """Names of parameters that received no gradient."""
    return [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]


def test_attention_rows_sum_to_one_and_match_fused_path():
    torch.manual_seed(0)
    att = Attention(32, 4)
    x, ctx = torch.randn(3, 10, 32), torch.randn(3, 7, 32)
    out_w, weights = att(x, ctx, need_weights=True)
    out_fused, none = att(x, ctx)
    assert weights.shape == (3, 4, 10, 7) and none is None
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 10), atol=1e-5)
    assert torch.allclose(out_w, out_fused, atol=1e-5)


def test_cross_block_follows_equations_1_to_3():
    torch.manual_seed(0)
    block = CrossAttentionBlock(16, 2, 2.0)
    f_ls, f_g = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    out, w1, w2 = block(f_ls, f_g, need_weights=True)
    f_lg = block.first(f_ls, f_g)[0] + f_ls                  # eq. 1
    f_lgm = f_lg + block.mlp(f_lg)                           # eq. 2 with its residual
    expected = block.second(f_g, f_lgm)[0] + f_g             # eq. 3
    assert torch.allclose(out, expected, atol=1e-5)
    assert any(isinstance(m, torch.nn.GELU) for m in block.mlp)
    assert w1.shape == (2, 2, 9, 9) and w2.shape == (2, 2, 9, 9)


@pytest.mark.parametrize("block", [FFFN(TOKENS, 48), CoordinateAttention(48, CFG.grid)])
def test_focus_blocks_keep_shape_and_pass_gradients(block):
    fc = torch.randn(2, TOKENS, 48, requires_grad=True)
    out = block(fc)
    assert out.shape == fc.shape
    out.square().sum().backward()
    assert fc.grad is not None and fc.grad.abs().sum() > 0
    assert not _grads_reach(block)


def test_fffn_weights_lie_between_zero_and_one():
    block = FFFN(TOKENS, 48)
    fc = torch.rand(2, TOKENS, 48) + 0.1
    ratio = block(fc) / fc
    assert torch.all(ratio > 0) and torch.all(ratio < 1)


@pytest.mark.parametrize("label", list(ABLATIONS) + list(BASELINES))
def test_every_variant_builds_runs_and_trains(label):
    torch.manual_seed(0)
    cfg = variant(CFG, label)
    model = build_model(cfg)
    s = cfg.input.size
    g = torch.rand(4, 1, s, s)
    logits = model(g, g * 0.5)
    assert logits.shape == (4, 3)
    logits.sum().backward()
    missing = _grads_reach(model)
    # Backbone and head always learn; the full GLFM leaves nothing idle.  (A feature
    # subset may leave the fusion path it drops without gradient, by design.)
    if cfg.architecture in ("resnet50", "efficientnet_b0"):
        # timm zero-initialises the last norm of each residual branch, so those branches
        # only start learning after a step; the stem and the classifier must learn at once.
        stem_and_head = [n for n, _ in model.named_parameters() if n.startswith(("backbone.conv1", "backbone.conv_stem",
                                                                                 "backbone.fc", "backbone.classifier"))]
        assert stem_and_head and not set(stem_and_head) & set(missing)
        return
    assert not [n for n in missing if n.startswith(("backbone", "head"))], missing
    if cfg.architecture != "vdpf" or len(cfg.features) == 3:
        assert not missing, missing


def test_attention_maps_only_on_request():
    model = build_model(CFG).eval()
    s = CFG.input.size
    g = torch.rand(3, 1, s, s)
    plain = model(g, g)
    logits, maps = model(g, g, need_attention=True)
    assert torch.allclose(plain, logits, atol=1e-5)
    for m in (maps.local_to_global, maps.global_to_local):
        assert m.shape == (3, CFG.grid, CFG.grid)
        assert torch.allclose(m.sum(dim=(1, 2)), torch.ones(3), atol=1e-5)


def test_backbone_is_shared_between_branches():
    model = build_model(CFG)
    assert sum(1 for n, _ in model.named_modules() if n.endswith("patch_embed")) == 1
    assert model.backbone.cls_token is None          # tokens only, no class token (docs/model.md)


def test_glfm_concatenates_features_along_channels():
    glfm = GLFM(CFG)
    f = torch.randn(2, TOKENS, CFG.embed_dim)
    fused, _ = glfm(f, f)
    assert fused.shape == (2, TOKENS, 3 * CFG.embed_dim)


def test_overfits_a_tiny_batch():
    """Wiring check: a correct network memorises 6 labelled pairs."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, drop_path=0.0)
    model = build_model(cfg)
    s = cfg.input.size
    g = torch.rand(6, 1, s, s)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(g, g * (g > 0.5)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert torch.equal(model(g, g * (g > 0.5)).argmax(1), labels)


def test_config_files_and_errors(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"base": "vdpf-tiny", "fusion": "coord", "epochs": 2}', encoding="utf-8")
    cfg = load_config(path)
    assert cfg.fusion == "coord" and cfg.epochs == 2 and cfg.embed_dim == VDPF_TINY.embed_dim
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    bad = tmp_path / "bad.json"
    bad.write_text('{"base": "vdpf-tiny", "fusion": "magic"}', encoding="utf-8")
    with pytest.raises(UserError, match="fusion"):
        load_config(bad)
    with pytest.raises(UserError, match="unknown config"):
        load_config("no-such-config")
    b16 = load_config("vdpf-b16")
    assert (b16.patch_size, b16.embed_dim, b16.depth, b16.input.size, b16.grid) == (16, 768, 12, 224, 14)


def test_the_benchmark_counts_the_fused_attention_flops_as_by_hand():
    """`dvt-staging benchmark` counts the fused attention kernels (torch's counter sees 0 FLOPs in the CPU one):
    for the bundled model's network (64x64 input, patch 8: 64 tokens of 128 channels, 4 ViT blocks) each
    attention costs 2 matrix products of 2 * tokens^2 * channels FLOPs, in every backbone block for both images
    of a pair and in the four attention blocks of the GLFM (two self-, two cross-attentions)."""
    from DVTStagingLib.staging.benchmark import count_flops
    from torch.utils.flop_counter import FlopCounterMode

    import json

    from DVTStagingLib.models.catalog import bundled_dir

    card = json.loads((bundled_dir() / "vdpf-small-phantom.json").read_text(encoding="utf-8"))
    cfg = ModelConfig.from_dict(card["config"])
    model = build_model(cfg).eval()
    tokens, channels = cfg.grid * cfg.grid, cfg.embed_dim
    one = 2 * (2 * tokens * tokens * channels)
    by_hand = one * (2 * cfg.depth + 4)
    assert tokens == 64 and by_hand == 25_165_824
    total, per_op = count_flops(model, cfg, torch.device("cpu"))
    attention = {op: n for op, n in per_op.items() if "attention" in op}
    assert sum(attention.values()) == by_hand, per_op
    x = torch.rand(2, 1, 64, 64)
    with FlopCounterMode(display=False) as plain, torch.inference_mode():
        model(x, x)
    others = sum(n for op, n in per_op.items() if op not in attention)
    assert plain.get_total_flops() / 2 in (others, total)        # torch alone: the kernel at 0 (or counted)
    assert total == others + by_hand


def test_embed_with_the_blocks_statistics_gives_the_same_fused_features():
    """The site check's feature space (each block's token statistics) comes from the same forward: the fused
    features and the logits are the ones `embed` gives without it."""
    from DVTStagingLib.models.vdpf import token_statistics

    torch.manual_seed(0)
    model = build_model(CFG).eval()
    g, loc = torch.randn(3, 1, CFG.input.size, CFG.input.size), torch.randn(3, 1, CFG.input.size, CFG.input.size)
    with torch.no_grad():
        plain, _ = model.embed(g, loc)
        fused, maps, layers = model.embed(g, loc, need_attention=True, need_layers=True)
    assert torch.allclose(plain, fused, atol=1e-5) and maps is not None
    assert layers.shape == (3, CFG.depth, 4 * CFG.embed_dim)
    # the statistics are of each view's tokens: equal views give equal global and local halves
    same = token_statistics(torch.ones(1, 4, 2), torch.ones(1, 4, 2))
    assert same.shape == (1, 8) and torch.equal(same[0, :2], same[0, 2:4]) and torch.all(same[0, 4:] == 0)
    t_g, t_l = torch.randn(2, 9, 5), torch.randn(2, 9, 5) * 3 + 1
    expected = torch.cat([t_g.mean(1), t_l.mean(1), t_g.std(1), t_l.std(1)], dim=1)
    assert torch.allclose(token_statistics(t_g, t_l), expected, atol=1e-5)
