"""What a warm Stage click must still do after the answer, measured piece by piece (issue 20).

    PYTHONPATH=DVTStaging python tools/after_answer_floor.py [--runs 9] [--seed 500]

Everything after the answer is either the evidence backward pass (torch, both cores) or the report
(matplotlib, one core), and the report needs the evidence: the slice it shows is the evidence's peak.  This
prints, for one warm one-ROI phantom study (benchmark-service's study):

- the evidence backward pass by operator (torch.profiler, self CPU time): how much of it is the matrix work
  of the network's own layers;
- the report's three parts: building the figure, drawing it (Agg), encoding the PNG;
- the answer's two networks run one after the other on two threads against side by side on one thread each
  (the staging forward in this thread, the detector's content check in a second one).

Medians over the warm runs; wall clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _median_s(times) -> str:
    return f"{statistics.median(times):.3f} s"


def backward_by_operator(stager, volume, rois, rows: int = 8) -> None:
    from torch.profiler import ProfilerActivity, profile

    from DVTStagingLib.staging.evidence import centred_logit

    _, results = stager.answer(volume, rois, keep_graph=True, show_progress=False)
    graph = results[0].graph
    target = int(np.argmax(results[0].probabilities))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        score = sum(centred_logit(logits.float(), target).sum() for _, logits in graph)
        torch.autograd.grad(score, [planes for planes, _ in graph])
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    print(f"evidence backward pass: {total:.3f} s of self CPU time ({sum(len(p) for p, _ in graph)} slice pairs)")
    print("| operator | calls | self CPU, s | share |\n|---|---|---|---|")
    for e in events[:rows]:
        seconds = e.self_cpu_time_total / 1e6
        print(f"| {e.key} | {e.count} | {seconds:.3f} | {seconds / total:.0%} |")


def report_parts(stager, detector, volume, rois, image, runs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from DVTStagingLib.staging import report
    from DVTStagingLib.staging.attention import attention_volume
    from DVTStagingLib.staging.evidence import evidence_volume
    from DVTStagingLib.staging.outputs import ATTENTION_FILES
    from DVTStagingLib.staging.results import build_result

    study, results = stager.stage(volume, rois, want_evidence=True, detector=detector, show_progress=False)
    overlays = {which: attention_volume(study, results, which) for which in ATTENTION_FILES}
    overlays["evidence"] = evidence_volume(study, results)
    result = build_result(study, results, stager.classes, stager.entry, "cpu", str(image), {}, None,
                          trust=stager.trust)
    report.warm_up()
    parts = {"savefig": [], "draw": []}
    savefig, draw = Figure.savefig, FigureCanvasAgg.draw

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[key].append(time.perf_counter() - started)
        return wrapper

    Figure.savefig, FigureCanvasAgg.draw = timed("savefig", savefig), timed("draw", draw)
    totals = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(runs):
                started = time.perf_counter()
                report.write_report(Path(folder) / "report.png", study, results, stager.classes, overlays, result)
                totals.append(time.perf_counter() - started)
    finally:
        Figure.savefig, FigureCanvasAgg.draw = savefig, draw
    build = [t - s for t, s in zip(totals, parts["savefig"])]
    encode = [s - d for s, d in zip(parts["savefig"], parts["draw"])]
    print(f"\nreport.png: {_median_s(totals)} = building the figure {_median_s(build)} + drawing (Agg) "
          f"{_median_s(parts['draw'])} + encoding the PNG {_median_s(encode)}")


def networks_in_turn_or_side_by_side(stager, detector, volume, rois, runs: int) -> None:
    from DVTStagingLib.staging.content import content_check
    from DVTStagingLib.staging.graph_budget import GraphBudget
    from DVTStagingLib.staging.slices import prepare_study

    roi, threads = rois[0], torch.get_num_threads()

    def check(study, one_thread: bool):
        if one_thread:
            torch.set_num_threads(1)
        return content_check(detector, volume, roi, study=study)

    def answer(side_by_side: bool, pool):
        study = prepare_study(volume, stager.cfg.input)
        budget = GraphBudget(stager.keep_graph_bytes, stager.model)
        if not side_by_side:
            check(study, False)
            return stager._run(study, roi, True, None, budget)
        pending = pool.submit(check, study, True)
        torch.set_num_threads(1)
        try:
            stager._run(study, roi, True, None, budget)
        finally:
            torch.set_num_threads(threads)
        return pending.result()

    times = {False: [], True: []}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for run in range(runs + 1):
            for side_by_side in (False, True):
                started = time.perf_counter()
                answer(side_by_side, pool)
                if run:
                    times[side_by_side].append(time.perf_counter() - started)
    print(f"\nthe answer's two networks (forward with its trust, content check): in turn on {threads} threads "
          f"{_median_s(times[False])}, side by side on one thread each {_median_s(times[True])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--seed", type=int, default=500, help="phantom study seed (500: benchmark-service's study)")
    args = parser.parse_args(argv)

    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.phantom.study import make_study
    from DVTStagingLib.phantom.writer import write_study
    from DVTStagingLib.staging.inference import Stager
    from DVTStagingLib.staging.pipeline import load_stage_inputs

    with tempfile.TemporaryDirectory() as folder:
        files = write_study(make_study(args.seed, ["acute"]), Path(folder) / "study")
        image = Path(folder) / "study" / files["image"]
        volume, rois = load_stage_inputs(image, Path(folder) / "study" / files["rois"][0], False)
    stager = Stager(None, "cpu")
    stager.warm_up()
    detector = load_detector(None, stager.device)
    print(f"warm one-ROI phantom study (seed {args.seed}), cpu, {torch.get_num_threads()} threads, "
          f"medians of {args.runs} runs\n")
    backward_by_operator(stager, volume, rois)
    report_parts(stager, detector, volume, rois, image, args.runs)
    networks_in_turn_or_side_by_side(stager, detector, volume, rois, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
