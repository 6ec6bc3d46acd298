"""The torch time of an answer's own model work: the staging network's forward over the ROI's slices (as the
answer runs it: with attention maps, and with gradients where it keeps its forward for the evidence pass) and
the detector's content check (on the window of the slices it runs), on inputs prepared beforehand.  The
yardstick of `benchmark-service`: the rest of a request's time to answer is work around the model (preparing
slices, the result, the request itself).
"""

from __future__ import annotations

import statistics
import time

import torch

from .content import BATCH, content_inputs, windowed
from .evidence import model_inputs_from_planes, view_planes
from .slices import prepare_study, slice_pairs


def _median(fn, repeats: int) -> float:
    fn()                                  # warm-up: allocations, kernel choice
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def answer_model_seconds(stager, detector, volume, roi, repeats: int = 5) -> dict:
    """Median seconds of the forward and of the content check's network for one ROI, and their sum."""
    study = prepare_study(volume, stager.cfg.input)
    keep = stager.keeps_graph
    with torch.inference_mode():
        pairs = slice_pairs(study, roi)
    batches = []
    for start in range(0, len(pairs), stager.batch_size):
        part = slice(start, start + stager.batch_size)
        if keep:        # the kept forward's inputs are built from the view slices, with gradients
            with torch.enable_grad():
                batches.append(model_inputs_from_planes(study, pairs, view_planes(study, pairs, part, stager.device),
                                                        part))
        else:
            batches.append((pairs.global_images[part].to(stager.device), pairs.local_images[part].to(stager.device)))

    def forward():
        for inputs in batches:
            if keep:
                with torch.enable_grad():
                    stager._forward(inputs, True)
            else:
                with torch.inference_mode(), stager._autocast():
                    stager._forward(inputs, True)

    forward_s = _median(forward, repeats)
    found = content_inputs(detector, volume, roi, study)
    content_s = 0.0
    if found is not None:
        inputs, _ = windowed(detector.network, *found)     # the part of the slices the check runs
        inputs = inputs.to(detector.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)

        def check():
            with torch.inference_mode():
                for start in range(0, len(inputs), BATCH):
                    detector.network(inputs[start: start + BATCH])
        content_s = _median(check, repeats)
    return {"forward_s": round(forward_s, 4), "content_check_s": round(content_s, 4),
            "model_s": round(forward_s + content_s, 4), "slices": len(pairs),
            "content_slices": 0 if found is None else len(found[0])}
