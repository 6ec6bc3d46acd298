"""Profile a warm `stage` step by step, as the staging service runs it (models loaded once, report warmed up).

    PYTHONPATH=DVTStaging python tools/profile_stage.py [--runs 7] [--threads N] [--clock wall|thread] [--json]

Each step is a function of the staging code wrapped with a timer wherever the code calls it (steps the code
does not have are left out, so the same script profiles an older tree: point PYTHONPATH at it).  Times are
inclusive (a step's sub-steps are indented under it) and are medians over the warm runs.  "time to answer" is
when `stage_study` hands over the answer (its `on_answer` callback), where the code has one.  The input is
read before the clock starts, as the service reads it when the request arrives.

On a machine shared with other work, wall-clock times of torch's multi-threaded steps swing several-fold;
`--threads 1 --clock thread` measures each step's CPU time in the thread that runs it (torch then runs in
that thread), which other processes hardly change: the step-by-step comparison of two trees that holds.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

# (label, "module:attribute" or "module:Class.method", depth); "A|B": A, or B in a tree without A
STEPS = [
    ("prepare the study (orient, percentiles, scale)", "staging.slices:prepare_study", 1),
    ("detector view of the whole study", "detection.view:prepare_view", 1),
    ("content-check inputs of the staged slices", "staging.content:_content_inputs|staging.content:content_inputs", 1),
    ("ROI box masks", "io.roi:BoxROI.voxel_mask", 1),
    ("slice pairs (I_G, I_L)", "staging.slices:slice_pairs", 1),
    ("ROI answer (forward, trust)", "staging.inference:Stager._run", 1),
    ("forward: network with attention maps", "staging.inference:Stager._forward", 2),
    ("content check", "staging.content:content_check|staging.content:thrombus_check", 1),
    ("detector network", "<detector>", 2),
    ("result table (ratio, JSON, schema)", "staging.results:build_result", 1),
    ("write result.json", "staging.results:write_result", 1),
    ("evidence maps", "staging.inference:Stager.explain", 1),
    ("with a forward of their own (gradients, blur)", "staging.evidence:evidence_maps", 2),
    ("forward through the network", "<stager-model>", 3),
    ("from the answer's forward (backward, blur)", "staging.evidence:evidence_from_graph", 2),
    ("smoothing", "staging.evidence:_gaussian_blur", 3),
    ("overlay volumes: attention", "staging.attention:attention_volume", 1),
    ("overlay volumes: evidence", "staging.evidence:evidence_volume", 1),
    ("report.png", "staging.report:write_report", 1),
    ("NRRDs written (second thread)", "staging.pipeline:_write_overlays", 1),
]


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
clock = time.perf_counter


class Timers:
    def __init__(self):
        self.seconds = defaultdict(float)
        self.lock = threading.Lock()

    def add(self, key, seconds):
        with self.lock:
            self.seconds[key] += seconds

    def wrap(self, key, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(key, clock() - started)
        return timed

    def hook_module(self, key, module):
        """Time every call of an nn.Module (hooks fire on __call__)."""
        starts = {}

        def before(mod, args):
            starts[threading.get_ident()] = clock()

        def after(mod, args, out):
            self.add(key, clock() - starts.pop(threading.get_ident(), clock()))
        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def _patch(timers: Timers, spec: str) -> bool:
    """Wrap one function everywhere the staging code can call it from; False when the code has no such step.
    Of alternatives "A|B", the first the code has (timed under the whole spec)."""
    return any(_patch_one(timers, spec, one) for one in spec.split("|"))


def _patch_one(timers: Timers, key: str, spec: str) -> bool:
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(f"DVTStagingLib.{module_name}")
    except ImportError:
        return False
    if "." in attr:
        cls_name, method = attr.split(".")
        cls = getattr(module, cls_name, None)
        if cls is None or method not in vars(cls):
            return False
        setattr(cls, method, timers.wrap(key, vars(cls)[method]))
        return True
    original = getattr(module, attr, None)
    if original is None:
        return False
    timed = timers.wrap(key, original)
    for name, mod in list(sys.modules.items()):      # every module that imported it by name
        if name.startswith("DVTStagingLib") and getattr(mod, attr, None) is original:
            setattr(mod, attr, timed)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="warm runs (after one warm-up run); medians are quoted")
    ap.add_argument("--seed", type=int, default=500, help="phantom study seed (500: benchmark-service's study)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall: elapsed time; thread: CPU time of the thread running each step")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from DVTStagingLib.core.progress import redirected
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.phantom.study import make_study
    from DVTStagingLib.phantom.writer import write_study
    from DVTStagingLib.staging import pipeline, report
    from DVTStagingLib.staging.inference import Stager

    folder = Path(tempfile.mkdtemp(prefix="dvt-profile-"))
    try:
        files = write_study(make_study(args.seed, ["acute"]), folder / "study")
        image, roi = folder / "study" / files["image"], folder / "study" / files["rois"][0]
        # Imported first, so that _patch finds every module that binds a step by name.
        for name in ("staging.attention", "staging.evidence", "staging.results", "staging.report",
                     "staging.content", "detection.view", "staging.slices", "staging.inference"):
            importlib.import_module(f"DVTStagingLib.{name}")
        timers = Timers()
        present = [(label, spec, depth) for label, spec, depth in STEPS
                   if spec.startswith("<") or _patch(timers, spec)]
        stager = Stager(None, "cpu")
        detector = load_detector(None, stager.device)
        timers.hook_module("<detector>", detector.network)
        timers.hook_module("<stager-model>", stager.model)
        report.warm_up()
        answers_early = "on_answer" in inspect.signature(pipeline.stage_study).parameters
        rows, totals, answers = defaultdict(list), [], []
        for run in range(args.runs + 1):
            volume, rois = pipeline.load_stage_inputs(image, roi, False)
            out = folder / f"out{run}"
            timers.seconds.clear()
            answered = []
            kwargs = {"on_answer": lambda result: answered.append(clock())} if answers_early else {}
            started = clock()
            with redirected(lambda line: None):
                pipeline.stage_study(image, out, volume=volume, rois=rois, stager=stager, detector=detector,
                                     device="cpu", **kwargs)
            total = clock() - started
            shutil.rmtree(out, ignore_errors=True)
            if run == 0:
                continue            # warm-up: first autograd and allocator calls
            totals.append(total)
            answers.append(answered[0] - started if answered else total)
            for _, spec, _ in present:
                rows[spec].append(timers.seconds.get(spec, 0.0))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = [{"step": label, "depth": depth, "seconds": round(statistics.median(rows[spec]), 3)}
             for label, spec, depth in present if any(rows[spec])]
    summary = {"torch_threads": torch.get_num_threads(), "clock": args.clock, "runs": args.runs, "seed": args.seed,
               "time_to_answer_s": round(statistics.median(answers), 3), "answers_early": answers_early,
               "total_s": round(statistics.median(totals), 3), "steps": table}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"warm stage, phantom seed {args.seed}, one ROI, cpu, {summary['torch_threads']} threads, "
          f"{args.clock} clock, medians of {args.runs} runs")
    print("| step | s |\n|---|---|")
    for row in table:
        print(f"| {'&nbsp;&nbsp;' * 2 * (row['depth'] - 1)}{row['step']} | {row['seconds']:.3f} |")
    print(f"| **time to answer** | **{summary['time_to_answer_s']:.3f}**"
          f"{'' if answers_early else ' (no answer before the end)'} |")
    print(f"| **total (every output written)** | **{summary['total_s']:.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
