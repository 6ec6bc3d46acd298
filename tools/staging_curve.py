"""The staging half of the adaptation learning curve (issue 19), both arms: fine-tuning the bundled staging
model with `adapt`'s recipe against training the same network from scratch with the bundled model's recipe,
on N labeled studies of a site, several seeds each, scored on every study of another draw of that site.

    PYTHONPATH=DVTStaging python tools/staging_curve.py --pool SITE_POOL --eval SITE_EVAL --out runs/staging-curve \
        [--sizes 10 20 40 80] [--seeds 0 1 2] [--arms finetune scratch]

For each N and seed, N pool studies are drawn as tools/learning_curve.py draws them (stratified by stage,
seeded), split by patient and stage as `adapt` splits them (research.adapt.site_splits), and each arm trains
on the train split with model selection on the val split, then re-fits the trust figures (temperature,
confidence threshold, OOD statistics) on the site as `adapt` does.  Scored with the true ROIs of SITE_EVAL,
indeterminate counted wrong, without the detector's content check (this curve isolates the staging model;
tools/learning_curve.py scores whole adapted pairs).  Rows are appended to OUT/curve.jsonl as they finish (a
stopped run resumes) and the table is printed at the end.

The from-scratch arm trains research models in this process on the site's studies; they are never saved.
The CLI's `train` refuses a held-out phantom style from scratch so that no bundled or published model learns
from the style its zero-shot figures are reported on (phantom.styles).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

import torch  # noqa: E402
from learning_curve import curve_arguments, mean_sd, subset  # noqa: E402
from screen_staging import trusted_metrics  # noqa: E402

from DVTStagingLib.core.stages import INDETERMINATE  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.research.adapt import site_splits  # noqa: E402
from DVTStagingLib.training.calibration import fit_trust  # noqa: E402
from DVTStagingLib.training.finetune import ENCODER_LR_SCALE, finetune_config, parent_staging  # noqa: E402
from DVTStagingLib.training.slice_bank import build_slice_bank  # noqa: E402
from DVTStagingLib.training.train import VAL_SLICES_PER_ROI, Distributed, train_model  # noqa: E402

ARMS = ("finetune", "scratch")


def train_arm(arm: str, bank, parent, seed: int, dev):
    """(model, trust, training record) of one arm on a site's slice bank."""
    _, cfg, state = parent
    if arm == "finetune":
        cfg, init, encoder = finetune_config(cfg), state, ENCODER_LR_SCALE
    else:
        init, encoder = None, 1.0       # the bundled model's own recipe (its config), from random weights
    train, val = bank.split("train"), bank.split("val")
    model, record = train_model(cfg, train, val.thinned(VAL_SLICES_PER_ROI), None, seed, dev, Distributed(dev),
                                init_state=init, encoder_lr_scale=encoder, log_name=f"curve-{arm}")
    trust, _ = fit_trust(model, train, val, dev)
    return model, trust, record


def score(model, trust, eval_bank, classes: list[str], dev) -> dict:
    m = trusted_metrics(model, trust, eval_bank, classes, dev)
    return {"macro_f1_true_rois": m["macro_f1"], "indeterminate_rate": m["indeterminate_rate"],
            "confidently_wrong_rate": m["confidently_wrong_rate"], "rois": m["n"],
            "abstained": round(m["indeterminate_rate"] * m["n"])}


def table(rows: list[dict]) -> str:
    lines = ["| labeled site studies | arm | seeds | macro F1 (true ROIs) | indeterminate | confidently wrong | "
             "training time, min |", "|---|---|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in rows}):
        for arm in ARMS:
            part = [r for r in rows if r["n"] == n and r["arm"] == arm]
            if not part:
                continue

            def cell(key):
                return mean_sd([r[key] for r in part])

            minutes = statistics.mean(r["train_s"] for r in part) / 60
            lines.append(f"| {n} | {arm} | {len(part)} | {cell('macro_f1_true_rois')} | "
                         f"{cell('indeterminate_rate')} | {cell('confidently_wrong_rate')} | {minutes:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    curve_arguments(parser, [10, 20, 40, 80])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    args = parser.parse_args(argv)
    dev = torch.device("cpu")
    pool, eval_set = load_dataset(args.pool), load_dataset(args.eval)
    parent = parent_staging(None)
    cfg = parent[1]
    eval_bank = build_slice_bank(eval_set, cfg.input)
    classes = list(eval_set.classes)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "curve.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    done = {(r["n"], r["seed"], r["arm"]) for r in rows}
    for n in args.sizes:
        for seed in args.seeds:
            todo = [arm for arm in args.arms if (n, seed, arm) not in done]
            if not todo:
                continue
            site = site_splits(load_dataset(subset(pool, n, seed, args.out / f"site-n{n}-s{seed}")), seed)
            bank = build_slice_bank(site, cfg.input)
            for arm in todo:
                started = time.perf_counter()
                model, trust, record = train_arm(arm, bank, parent, seed, dev)
                row = {"n": n, "seed": seed, "arm": arm, "train_s": round(time.perf_counter() - started, 1),
                       "best_epoch": record["best_epoch"], "epochs_run": record["epoch"],
                       "splits": {s: len(site.split(s)) for s in ("train", "val", "test")},
                       "pool": pool.provenance(), "eval": eval_set.provenance(),
                       **score(model, trust, eval_bank, classes, dev)}
                rows.append(row)
                with open(log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"staging curve: n={n} seed={seed} {arm}: macro F1 {row['macro_f1_true_rois']:.3f}, "
                      f"{INDETERMINATE} {row['indeterminate_rate']:.1%}, confidently wrong "
                      f"{row['confidently_wrong_rate']:.1%} ({row['train_s'] / 60:.1f} min)", file=sys.stderr,
                      flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
