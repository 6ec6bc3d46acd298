"""The adaptation learning curve (issue 19): macro F1 on a site's held-out studies against the number of that
site's labeled studies `adapt` learned from.

    PYTHONPATH=DVTStaging python tools/learning_curve.py --pool SITE_POOL --eval SITE_EVAL --out runs/curve \
        [--sizes 0 10 20 40 80] [--seeds 0 1 2] [--device cpu] [-- ADAPT OPTIONS]

SITE_POOL and SITE_EVAL are two datasets of the same site (e.g. two seeds of a held-out phantom style, made
boxes-only as a site exports them).  For each size N > 0 and seed, N pool studies are drawn (stratified by
stage, seeded), `dvt-staging adapt` runs on them in a new process (timed), and the adapted pair is scored
on every SITE_EVAL study (true ROIs and detected ROIs, indeterminate counted wrong); N = 0 scores the
bundled pair.  Each row is appended to OUT/curve.jsonl as it finishes (a long run can be stopped and
resumed: rows already there are skipped), and the table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

from DVTStagingLib.core.stages import INDETERMINATE  # noqa: E402
from DVTStagingLib.io.dataset import Dataset, load_dataset, write_dataset_json  # noqa: E402


def subset(pool: Dataset, n: int, seed: int, folder: Path) -> Path:
    """A dataset of `n` pool studies (stratified by the first ROI's stage), linking the pool's case folders."""
    rng = np.random.default_rng([seed, n])
    by_stage: dict[str, list] = {}
    for case in pool.cases:
        by_stage.setdefault(case.labels[0]["stage"] if case.labels else "none", []).append(case)
    order = {s: list(rng.permutation(len(cs))) for s, cs in by_stage.items()}
    chosen, stages = [], sorted(by_stage)
    while len(chosen) < min(n, len(pool.cases)):
        for s in stages:
            if order[s] and len(chosen) < n:
                chosen.append(by_stage[s][order[s].pop()])
    folder.mkdir(parents=True, exist_ok=True)
    for case in chosen:
        case_dir = Path(case.image).parent
        link = folder / case_dir
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink((pool.root / case_dir).resolve(), link)
    write_dataset_json(Dataset(folder, chosen, pool.classes, dict(pool.meta, name=f"{folder.name}")))
    return folder


def scores(eval_set: Dataset, staging: str | None, detector: str | None, device: str, out: Path) -> dict:
    from DVTStagingLib.training.evaluate import evaluate_model

    metrics = evaluate_model(eval_set, staging, out, split="all", device=device, overwrite=True, detector=detector,
                             explain=False)
    s = metrics["staging"]
    answered = [p for p in s["predictions"] if p["stage"] != INDETERMINATE]
    d = metrics.get("detection") or {}
    return {"macro_f1_true_rois": s["macro_f1"], "macro_f1_detected_rois": d.get("staging_macro_f1_detected_rois"),
            "indeterminate_rate": s["indeterminate_rate"],
            "confidently_wrong_rate": sum(p["stage"] != p["truth"] for p in answered) / max(s["n"], 1),
            "detector_recall": d.get("recall_3d"), "false_rois_per_study": d.get("false_rois_per_study"),
            "rois": s["n"]}


def mean_sd(values: list[float]) -> str:
    """The mean over seeds, with the standard deviation where there are several."""
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{spread}"


def curve_arguments(parser: argparse.ArgumentParser, sizes: list[int]) -> None:
    """The options every learning-curve tool takes: the site's pool and eval draws, the output, sizes, seeds."""
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=sizes)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])


def table(rows: list[dict]) -> str:
    lines = ["| labeled site studies | seeds | macro F1 (true ROIs) | macro F1 (detected ROIs) | indeterminate | "
             "confidently wrong | detector recall | adapt time, min |", "|---|---|---|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in rows}):
        part = [r for r in rows if r["n"] == n]

        def cell(key):
            values = [r[key] for r in part if r.get(key) is not None]
            return mean_sd(values) if values else "—"

        minutes = [r["adapt_s"] / 60 for r in part if r.get("adapt_s")]
        lines.append(f"| {n} | {len(part)} | {cell('macro_f1_true_rois')} | {cell('macro_f1_detected_rois')} | "
                     f"{cell('indeterminate_rate')} | {cell('confidently_wrong_rate')} | {cell('detector_recall')} | "
                     f"{statistics.mean(minutes):.1f} |" if minutes else
                     f"| {n} | {len(part)} | {cell('macro_f1_true_rois')} | {cell('macro_f1_detected_rois')} | "
                     f"{cell('indeterminate_rate')} | {cell('confidently_wrong_rate')} | {cell('detector_recall')} | — |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    curve_arguments(parser, [0, 10, 20, 40, 80])
    parser.add_argument("--device", default="cpu")
    args, adapt_options = parser.parse_known_args(argv)
    adapt_options = [a for a in adapt_options if a != "--"]
    pool, eval_set = load_dataset(args.pool), load_dataset(args.eval)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "curve.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    done = {(r["n"], r["seed"]) for r in rows}
    for n in args.sizes:
        for seed in ([0] if n == 0 else args.seeds):
            if (n, seed) in done:
                continue
            row = {"n": n, "seed": seed, "pool": pool.provenance(), "eval": eval_set.provenance(),
                   "adapt_options": adapt_options}
            staging = detector = None
            if n:
                data = subset(pool, n, seed, args.out / f"site-n{n}-s{seed}")
                run = args.out / f"adapt-n{n}-s{seed}"
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "DVTStagingLib", "adapt", "--data", str(data),
                                       "--out", str(run), "--seed", str(seed), "--device", args.device,
                                       "--no-publish", "--overwrite", *adapt_options],
                                      stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]
                                                                          / "DVTStaging")))
                row["adapt_s"] = round(time.perf_counter() - started, 1)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return proc.returncode
                staging, detector = str(run / "staging.json"), str(run / "detector.json")
                row["command"] = (f"dvt-staging adapt --data {data.name} --out {run.name} --seed {seed} "
                                  f"--device {args.device} --no-publish {' '.join(adapt_options)}").strip()
            row.update(scores(eval_set, staging, detector, args.device, args.out / f"eval-n{n}-s{seed}"))
            rows.append(row)
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(f"learning curve: n={n} seed={seed}: macro F1 {row['macro_f1_true_rois']:.3f} true ROIs, "
                  f"indeterminate {row['indeterminate_rate']:.1%}", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
