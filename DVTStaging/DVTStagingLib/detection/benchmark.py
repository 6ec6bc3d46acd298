"""Speed of `detect_rois` on a study of a given size (the `benchmark` command's detection figures)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..io.volume import Volume
from .detector import detect_rois, load_detector

BENCHMARK_SEED = 7      # a phantom study with a thrombus, so the linking has work to do


def benchmark_study(shape_ijk=(256, 256, 100), seed: int = BENCHMARK_SEED) -> Volume:
    """A phantom study cropped or zero-padded to exactly `shape_ijk` voxels, keeping its geometry."""
    from ..phantom.study import make_study

    study = make_study(seed, ["acute"])
    source = study.volume
    want = tuple(int(s) for s in shape_ijk)[::-1]          # k, j, i
    out = np.zeros(want, dtype=source.array.dtype)
    src = [slice(max(0, (s - w) // 2), max(0, (s - w) // 2) + min(s, w)) for s, w in zip(source.array.shape, want)]
    dst = [slice(max(0, (w - s) // 2), max(0, (w - s) // 2) + min(s, w)) for s, w in zip(source.array.shape, want)]
    out[tuple(dst)] = source.array[tuple(src)]
    return Volume(out, source.spacing, source.origin_lps, source.direction_lps)


def benchmark_detection(model=None, device: str = "cpu", shape_ijk=(256, 256, 100), repeats: int = 3,
                        threads: int | None = None) -> dict:
    """Median wall time of detection (probability map included) after one warm-up run."""
    if threads:
        torch.set_num_threads(int(threads))
    volume = benchmark_study(shape_ijk)
    detector = load_detector(model, device)
    detect_rois(volume, detector, progress=False)         # warm-up: first-call allocations, kernel choice
    runs = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = detect_rois(volume, detector, progress=False)
        runs.append((time.perf_counter() - start, result.timings))
    runs.sort(key=lambda r: r[0])
    seconds, timings = runs[len(runs) // 2]
    n_slices = result.view.n_slices
    return {
        "task": "detect",
        "model": detector.model_id,
        "device": str(detector.device),
        "threads": torch.get_num_threads(),
        "size_ijk": list(shape_ijk),
        "slices": n_slices,
        "seconds": round(seconds, 3),
        "slices_per_second": round(n_slices / seconds, 1),
        "stages_s": {k: round(v, 3) for k, v in timings.items() if k != "total"},
        "rois_found": len(result.rois),
        "repeats": len(runs),
    }
