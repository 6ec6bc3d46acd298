"""`dvt-staging benchmark-service`: what the warm staging service buys, measured in one run on this machine.

1. Latency, same one-ROI phantom study: a cold local `dvt-staging stage` (a new process: imports, model
   load, staging, report) against a warm server: the time to the answer and to every output, for the
   panel's request made by an in-process client and for `dvt-staging stage --server` (a new client process),
   medians of `repeats` runs each; their ratios to the cold run and to the torch time of the answer's own
   model work (forward and content check, staging.model_time, measured here in the same run).  The four
   are measured in turn, `repeats` rounds of one each, so that a drifting load on a shared machine weighs
   on all of them alike.
2. Load, on loopback: `clients` concurrent clients (threads speaking the service protocol) each stage
   `studies` studies (a few distinct phantom studies in turn); every answer is checked against local
   staging of the same study (result.json but its timings, and every NRRD's voxels); latency p50/p95 and
   throughput.  With cross-request batching (a GPU, or `--server-jobs` > 1) the model's share of the
   matrix-multiply peak measured in the same run is reported from the server's model-thread statistics.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..core.errors import UserError
from ..core.progress import redirected, status
from . import protocol as p
from .latency import client_process, panel_inputs, panel_requests

DISTINCT_STUDIES = 4
# Issue 20's goals: answer <= 0.10 x cold and <= 2 x the model's torch time; every output <= 0.20 x cold.
GOAL_ANSWER_COLD, GOAL_ANSWER_MODEL, GOAL_ALL_COLD = 0.10, 2.0, 0.20


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "DVTStagingLib", *map(str, args)]


def _env() -> dict:
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_parent, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _timed_run(argv: list[str], timeout: float = 900) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env())
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise UserError(f"benchmark: {' '.join(argv[3:5])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds


def _studies(folder: Path, n: int) -> list[dict]:
    from ..core.stages import STAGES
    from ..phantom.study import make_study
    from ..phantom.writer import write_study

    found = []
    for k in range(n):
        files = write_study(make_study(500 + k, [STAGES[k % len(STAGES)]]), folder / f"s{k}")
        found.append({"image": folder / f"s{k}" / files["image"], "roi": folder / f"s{k}" / files["rois"][0]})
    return found


def _comparable(out: Path) -> dict:
    """What must be identical between two runs on the same study: result.json but timings, the NRRD voxels."""
    import hashlib

    from ..io.volume import read_volume

    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    result.pop("timings", None)
    result.get("input", {}).pop("path", None)
    volumes = {}
    for path in sorted(out.glob("*.nrrd")):
        volume = read_volume(path)
        volumes[path.name] = hashlib.sha256(volume.array.tobytes()).hexdigest()
    return {"result": result, "volumes": volumes}


class _Server:
    def __init__(self, folder: Path, device: str, jobs: int | None):
        folder.mkdir(parents=True, exist_ok=True)
        self.port_file = folder / "port"
        self.log = open(folder / "serve.log", "w", encoding="utf-8")
        argv = _cli("serve", "--port", 0, "--port-file", self.port_file, "--device", device, "--work-dir",
                    folder / "work", "--max-jobs", 64, "--log-level", "warning")
        if jobs:
            argv += ["--jobs", str(jobs)]
        started = time.perf_counter()
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=_env())
        while not self.port_file.exists():
            if self.process.poll() is not None or time.perf_counter() - started > 600:
                self.stop()
                raise UserError(f"benchmark: the server did not start (see {folder / 'serve.log'})")
            time.sleep(0.05)
        self.startup_s = time.perf_counter() - started
        self.url = f"http://127.0.0.1:{int(self.port_file.read_text())}"

    def health(self) -> dict:
        import httpx

        return httpx.get(self.url + p.HEALTH, timeout=10).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def _load_test(url: str, studies: list[dict], references: list[dict], clients: int, per_client: int,
               folder: Path) -> dict:
    """`clients` threads, each staging `per_client` studies one after the other through the protocol."""
    from .client import Remote, _study_upload

    latencies, failures, mismatches = [], [], []
    pairs = [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        from contextlib import ExitStack

        with redirected(lambda line: None):          # the client's progress lines are not the benchmark's
            for j in range(per_client):
                k = (c + j) % len(studies)
                out = folder / f"c{c}-{j}"
                out.mkdir(parents=True)
                started = time.perf_counter()
                try:
                    with ExitStack() as stack:
                        remote = Remote(url, values={p.OUT: str(out)})
                        stack.callback(remote.close)
                        fields, files, _ = _study_upload(studies[k]["image"], stack)
                        files[p.ROIS] = ("rois.mrk.json", stack.enter_context(open(studies[k]["roi"], "rb")),
                                         "application/json")
                        job = remote.submit(p.STAGE, {**fields, p.AUTO_ROI: "false"}, files)["job"]
                        done = remote.follow(job)
                        listed = set((done.get("result") or {}).get("outputs", {}).values())
                        from ..staging.outputs import STAGE_OUTPUTS

                        remote.fetch(job, out, set(STAGE_OUTPUTS) | listed)
                    seconds = time.perf_counter() - started
                    same = _comparable(out) == references[k]
                    with lock:
                        latencies.append(seconds)
                        pairs[0] += sum(len(r["slices"]) for r in references[k]["result"]["rois"])
                        if not same:
                            mismatches.append(f"client {c} study {k}")
                except Exception as exc:   # counted and reported, the others go on
                    with lock:
                        failures.append(f"client {c} study {k}: {type(exc).__name__}: {exc}")
                shutil.rmtree(out, ignore_errors=True)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))] if ordered else float("nan")

    return {"clients": clients, "studies_per_client": per_client, "requests": clients * per_client,
            "succeeded": len(latencies), "failed": failures, "slice_pairs": pairs[0],
            "identical_to_local": len(latencies) - len(mismatches), "mismatches": mismatches,
            "p50_s": round(quantile(0.5), 3), "p95_s": round(quantile(0.95), 3), "wall_s": round(wall, 2),
            "studies_per_s": round(len(latencies) / wall, 3) if wall > 0 else None}


def _model_share(stats: dict, pairs: int, device_name: str, model_card: Path) -> dict:
    """The staging network's achieved FLOP/s while the model thread ran, against the matmul peak."""
    from ..models.build import build_model
    from ..models.catalog import read_card
    from ..models.config import ModelConfig
    from ..models.devices import resolve_device
    from ..staging.benchmark import flops_per_pair, matmul_peak

    device = resolve_device(device_name)
    entry = read_card(model_card)
    cfg = ModelConfig.from_dict(entry.card["config"])
    flops = flops_per_pair(build_model(cfg).to(device).eval(), cfg, device)
    peak = matmul_peak(device)
    achieved = pairs * flops / stats["busy_s"] / 1e9 if stats["busy_s"] else 0.0
    return {"slice_pairs": pairs, "model_busy_s": stats["busy_s"], "merged_batches": stats["batches"],
            "calls": stats["calls"], "achieved_gflops": round(achieved, 1), "matmul_peak_gflops": round(peak, 1),
            "share_of_peak": round(achieved / peak, 3) if peak else None}


def run_service_benchmark(device: str = "auto", repeats: int = 5, clients: int = 8, studies: int = 10,
                          as_json: bool = False, server_jobs: int | None = None) -> dict:
    from ..models.catalog import resolve
    from ..models.devices import resolve_device

    torch_device = resolve_device(device)
    device_name = str(torch_device)
    folder = Path(tempfile.mkdtemp(prefix="dvt-benchmark-service-"))
    try:
        status("benchmark-service: writing phantom studies")
        pool = _studies(folder / "studies", DISTINCT_STUDIES)
        study = pool[0]
        panel_image, panel_roi = panel_inputs(study, folder / "panel-inputs")    # their geometry is re-written:
        _timed_run(_cli("stage", panel_image, "--roi", panel_roi, "--out", folder / "panel-ref", "--device",
                        device_name))                                          # its own local reference
        panel_reference = _comparable(folder / "panel-ref")
        references = [None]
        for k, other in enumerate(pool[1:], start=1):
            _timed_run(_cli("stage", other["image"], "--roi", other["roi"], "--out", folder / f"ref{k}", "--device",
                            device_name))
            references.append(_comparable(folder / f"ref{k}"))
        measure_model = _model_timer(study, device_name)
        server = _Server(folder / "server", device_name, server_jobs)
        try:
            status(f"benchmark-service: server up in {server.startup_s:.1f} s")
            warmup = _timed_run(_cli("stage", study["image"], "--roi", study["roi"], "--out", folder / "warmup",
                                     "--server", server.url, "--device", device_name))
            # Each round measures everything once, in turn: on a shared machine whose load drifts, the ratios
            # then compare figures measured under the same load.
            cold, models, warm, panel = [], [], [], []
            for i in range(repeats):
                status(f"benchmark-service: round {i + 1}/{repeats}: cold local stage, the answer's model torch "
                       "time, stage --server, the panel's request")
                cold.append(_timed_run(_cli("stage", study["image"], "--roi", study["roi"], "--out",
                                            folder / f"cold{i}", "--device", device_name)))
                models.append(measure_model())
                warm.append(client_process(_cli("stage", study["image"], "--roi", study["roi"], "--out",
                                                folder / f"warm{i}", "--server", server.url, "--device",
                                                device_name), _env()))
                panel += panel_requests(server.url, panel_image, panel_roi, folder / f"round{i}", 1, device_name)
            references[0] = _comparable(folder / "cold0")
            same = all(_comparable(folder / f"warm{i}") == references[0] for i in range(repeats))
            same = same and all(_comparable(folder / f"round{i}" / "panel0") == panel_reference
                                for i in range(repeats))
            model = {k: (statistics.median(m[k] for m in models) if k.endswith("_s") else models[0][k])
                     for k in models[0]}
            model["runs_s"] = [m["model_s"] for m in models]
            steps = [json.loads((folder / f"warm{i}" / "result.json").read_text())["timings"] for i in range(repeats)]
            pipeline = {k: round(statistics.median(t.get(k, 0.0) for t in steps), 3)
                        for k in ("stage", "overlays", "report", "total")}
            status(f"benchmark-service: load test, {clients} clients x {studies} studies")
            before = server.health().get("batching")
            load = _load_test(server.url, pool, references, clients, studies, folder / "load")
            after = server.health().get("batching")
        finally:
            server.stop()
        cold_s = statistics.median(cold)
        report = {
            "device": device_name, "cpu_cores": os.cpu_count(), "model": resolve(None, "staging").id,
            "study": "phantom, one ROI", "repeats": repeats,
            "cold_local_s": round(cold_s, 3), "cold_runs_s": [round(x, 3) for x in cold],
            "server_startup_s": round(server.startup_s, 2), "warm_first_request_s": round(warmup, 3),
            "answer_model_s": model,
            "panel": _latency(panel, cold_s, model["model_s"]),
            "client": _latency(warm, cold_s, model["model_s"]),
            "warm_identical_to_local": same, "warm_pipeline_s": pipeline,
        }
        report["warm_server_s"] = report["client"]["all_s"]          # the earlier runs' figure: warm stage --server
        report["ratio"] = report["client"]["all_vs_cold"]
        report["goal_met"] = report["panel"]["goals_met"]
        report["load"] = load
        if after and before is not None:
            stats = {"busy_s": after["busy_s"] - before["busy_s"], "batches": after["batches"] - before["batches"],
                     "calls": after["calls"] - before["calls"]}
            report["batching"] = _model_share(stats, load["slice_pairs"], device_name,
                                              resolve(None, "staging").card_path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _print(report, as_json)
    return report


def _model_timer(study: dict, device: str):
    """A function that measures the torch time of the study's answer (staging.model_time), with the models
    loaded here once."""
    from ..detection.detector import load_detector
    from ..staging.inference import Stager
    from ..staging.model_time import answer_model_seconds
    from ..staging.pipeline import load_stage_inputs

    volume, rois = load_stage_inputs(study["image"], study["roi"], False)
    stager = Stager(None, device)
    stager.warm_up()
    detector = load_detector(None, stager.device)
    return lambda: answer_model_seconds(stager, detector, volume, rois[0], repeats=1)


def _latency(runs: list[tuple[float, float]], cold_s: float, model_s: float) -> dict:
    answer, every = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    out = {"answer_s": round(answer, 3), "all_s": round(every, 3),
           "answer_vs_cold": round(answer / cold_s, 3), "answer_vs_model": round(answer / model_s, 2),
           "all_vs_cold": round(every / cold_s, 3), "runs_s": [[round(a, 3), round(b, 3)] for a, b in runs]}
    out["goals_met"] = (out["answer_vs_cold"] <= GOAL_ANSWER_COLD and out["answer_vs_model"] <= GOAL_ANSWER_MODEL
                        and out["all_vs_cold"] <= GOAL_ALL_COLD)
    return out


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    r, load = report, report["load"]
    print(f"device {r['device']}, {r['cpu_cores']} CPU cores, model {r['model']}, {r['study']}, medians of "
          f"{r['repeats']} runs")
    print(f"cold local stage (new process: imports, model load, staging, report)  {r['cold_local_s']:.3f} s  "
          f"runs {r['cold_runs_s']}")
    m = r["answer_model_s"]
    print(f"model torch time of the answer: forward {m['forward_s']:.3f} s ({m['slices']} slice pairs) + content "
          f"check {m['content_check_s']:.3f} s ({m['content_slices']} slices) = {m['model_s']:.3f} s  runs {m['runs_s']}")
    for key, what in (("panel", "the panel's request, in-process client (request -> answer event)"),
                      ("client", "stage --server, new client process (start -> stage line)")):
        x = r[key]
        print(f"{what}: answer {x['answer_s']:.3f} s = {x['answer_vs_cold']:.3f} x cold (goal <= "
              f"{GOAL_ANSWER_COLD}), {x['answer_vs_model']:.2f} x model (goal <= {GOAL_ANSWER_MODEL:g}); all outputs "
              f"{x['all_s']:.3f} s = {x['all_vs_cold']:.3f} x cold (goal <= {GOAL_ALL_COLD}): "
              f"{'met' if x['goals_met'] else 'NOT met'}  runs (answer, all) {x['runs_s']}")
    print(f"  server start-up {r['server_startup_s']:.2f} s (once); first request {r['warm_first_request_s']:.3f} s; "
          f"outputs identical to local: {'yes' if r['warm_identical_to_local'] else 'NO'}")
    w = r["warm_pipeline_s"]
    print(f"  the staging run itself on the server {w['total']:.3f} s (stage {w['stage']:.3f}, overlays "
          f"{w['overlays']:.3f}, report {w['report']:.3f}); stage --server's client start, upload, download "
          f"{r['warm_server_s'] - w['total']:.3f} s")
    print(f"load on loopback: {load['clients']} concurrent clients x {load['studies_per_client']} studies = "
          f"{load['requests']} requests, {load['succeeded']} succeeded, {load['identical_to_local']} identical to local, "
          f"p50 {load['p50_s']:.3f} s, p95 {load['p95_s']:.3f} s, {load['studies_per_s']} studies/s "
          f"over {load['wall_s']} s")
    for line in load["failed"][:5] + load["mismatches"][:5]:
        print(f"  {line}")
    if "batching" in r:
        b = r["batching"]
        print(f"batching across requests: {b['slice_pairs']} slice pairs in {b['merged_batches']} model batches "
              f"({b['calls']} calls), model busy {b['model_busy_s']:.2f} s, {b['achieved_gflops']} GFLOP/s = "
              f"{b['share_of_peak']:.0%} of the matmul peak {b['matmul_peak_gflops']} GFLOP/s")
    else:
        print("batching across requests: off (one job thread on a CPU; a GPU server batches, see --server-jobs)")
