"""`dvt-staging benchmark`: slice pairs per second and achieved FLOP/s, against the matmul peak of the same run.

For each configuration the same network runs three ways on random inputs:
batched under inference_mode (fused attention; bf16 autocast on a GPU),
batched with the cross-attention maps the overlay needs, and a
straightforward per-slice fp32 loop.  Medians of repeated runs are quoted.

FLOPs are counted by torch's FlopCounterMode, with the fused CPU attention kernel added: torch counts it as
0 (it registers the GPU kernels only), which left out the attention matrix products (vdpf-b16: 3.3 of 75.6
GFLOP per pair).  On a CPU the batch size is chosen by measurement (pairs/s of each candidate, the best
kept); on a GPU it is fixed.
"""

from __future__ import annotations

import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..core.errors import UserError
from ..models.build import build_model
from ..models.catalog import resolve
from ..models.config import VDPF_B16, VDPF_SMALL, ModelConfig
from ..models.devices import resolve_device


CPU_BATCHES_SMALL = (4, 8, 16, 32, 64)
CPU_BATCHES_B16 = (2, 4, 8)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, repeats: int, device, warmups: int = 2) -> float:
    for _ in range(warmups):                # allocations, kernel selection, CPU clocks settling
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square matrix multiply in the dtype the models run in."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 8192 if device.type == "cuda" else n
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = _median_seconds(lambda: a @ b, repeats, device)
    return 2 * n ** 3 / seconds / 1e9


def attention_flop_formulas() -> dict:
    """FlopCounterMode formulas for the fused attention kernels torch does not count (its CPU kernel): the
    same analytic count torch uses for the GPU ones (Q K^T and A V, 2 FLOPs per multiply-add)."""
    from torch.utils import flop_counter

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:     # FlopCounterMode passes shapes
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    formulas = {"_scaled_dot_product_flash_attention_for_cpu": forward,
                "_scaled_dot_product_flash_attention_for_cpu_backward": backward}
    return {getattr(aten, name): formula for name, formula in formulas.items()
            if hasattr(aten, name) and getattr(aten, name) not in flop_counter.flop_registry}


def count_flops(model, cfg: ModelConfig, device) -> tuple[float, dict]:
    """FLOPs of one slice pair through `model` (fused attention counted), and per operator."""
    x = torch.rand(2, 1, cfg.input.size, cfg.input.size, device=device)
    with FlopCounterMode(display=False, custom_mapping=attention_flop_formulas()) as counter, torch.inference_mode():
        model(x, x)
    per_op = {str(op): n / 2 for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return counter.get_total_flops() / 2, per_op


def flops_per_pair(model, cfg: ModelConfig, device) -> float:
    return count_flops(model, cfg, device)[0]


def best_batch(run, candidates, repeats: int, device) -> tuple[int, dict]:
    """The batch size with the most pairs/s (`run(batch)` runs one batch), and every candidate's pairs/s."""
    rates = {b: round(b / _median_seconds(lambda: run(b), repeats, device, warmups=1), 2) for b in candidates}
    return max(rates, key=rates.get), rates


def bench_config(cfg: ModelConfig, device, batches, repeats: int, loop_pairs: int) -> dict:
    """`batches`: the batch size, or the candidates to measure (the fastest is used)."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    s = cfg.input.size
    most = max(batches) if isinstance(batches, (list, tuple)) else batches
    g_all = torch.rand(max(most, loop_pairs), 1, s, s, device=device)
    local_all = g_all * (torch.rand(max(most, loop_pairs), 1, s, s, device=device) > 0.9)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def batched(attention=False, n=None):
        n = n or batch
        with torch.inference_mode(), autocast:
            model(g_all[:n], local_all[:n], need_attention=attention)

    sweep = None
    if isinstance(batches, (list, tuple)):
        batch, sweep = best_batch(lambda n: batched(n=n), batches, max(2, repeats // 2), device)
    else:
        batch = batches

    def per_slice_loop():
        with torch.no_grad():
            for i in range(loop_pairs):
                model(g_all[i: i + 1].float(), local_all[i: i + 1].float())

    flops, per_op = count_flops(model, cfg, device)
    attention = sum(n for op, n in per_op.items() if "attention" in op or "bmm" in op)
    t_batch = _median_seconds(batched, repeats, device)
    t_att = _median_seconds(lambda: batched(True), repeats, device)
    t_loop = _median_seconds(per_slice_loop, max(1, repeats // 2), device)
    pairs_batch, pairs_loop = batch / t_batch, loop_pairs / t_loop
    return {
        "config": cfg.name, "input": s, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "gflop_per_pair": round(flops / 1e9, 3), "attention_gflop_per_pair": round(attention / 1e9, 3),
        "batch": batch, **({"pairs_per_s_by_batch": sweep} if sweep else {}),
        "pairs_per_s_batched": round(pairs_batch, 2),
        "pairs_per_s_batched_with_attention_maps": round(batch / t_att, 2),
        "pairs_per_s_per_slice_loop": round(pairs_loop, 2),
        "speedup_batched_vs_loop": round(pairs_batch / pairs_loop, 2),
        "achieved_gflops": round(flops * pairs_batch / 1e9, 1),
    }


def run_benchmark(device: str = "auto", repeats: int = 5, as_json: bool = False) -> dict:
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    peak_before = matmul_peak(dev)
    try:
        small = ModelConfig.from_dict(resolve(None, "staging").card["config"])
    except UserError:
        small = VDPF_SMALL          # no bundled model: its config still benchmarks
    gpu = dev.type == "cuda"
    rows = [   # on a CPU the batch is measured: the fastest of a few sizes (cache-sized batches often win)
        bench_config(small, dev, 64 if gpu else CPU_BATCHES_SMALL, repeats=repeats, loop_pairs=32),
        bench_config(VDPF_B16, dev, 256 if gpu else CPU_BATCHES_B16, repeats=max(2, repeats // 2),
                     loop_pairs=8 if not gpu else 32),
    ]
    # The peak is measured before and after the models; the higher reading is the fairer yardstick.
    peak = max(peak_before, matmul_peak(dev))
    for r in rows:
        r["fraction_of_matmul_peak"] = round(r["achieved_gflops"] / peak, 3)
    report = {"device": str(dev), "torch_threads": threads, "matmul_peak_gflops": round(peak, 1), "configs": rows}
    try:
        from ..detection.benchmark import benchmark_detection
    except ImportError:
        benchmark_detection = None
    if benchmark_detection is not None:
        report["detection"] = benchmark_detection(device=device)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"device {report['device']}, {threads} threads, matmul peak {report['matmul_peak_gflops']} GFLOP/s (fp32 on CPU, bf16 on GPU)")
        head = ("config", "GFLOP/pair", "of which attention", "batch", "pairs/s batched", "with attn maps",
                "per-slice loop", "speed-up", "GFLOP/s", "of peak")
        print(" | ".join(head))
        for r in rows:
            print(" | ".join(str(x) for x in (
                r["config"], r["gflop_per_pair"], r["attention_gflop_per_pair"], r["batch"], r["pairs_per_s_batched"],
                r["pairs_per_s_batched_with_attention_maps"], r["pairs_per_s_per_slice_loop"],
                f"{r['speedup_batched_vs_loop']}x", r["achieved_gflops"], f"{100 * r['fraction_of_matmul_peak']:.0f}%")))
        for r in rows:
            if "pairs_per_s_by_batch" in r:
                print(f"{r['config']}: pairs/s by batch size {r['pairs_per_s_by_batch']} -> batch {r['batch']}")
        if "detection" in report:
            print("detection:", json.dumps(report["detection"]))
    return report
