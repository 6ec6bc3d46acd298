"""`dvt-staging train` on phantom studies rendered in memory, several seeds at once on one GPU.

For a lent GPU box without SimpleITK/slicerio: the bank of `dvt-staging phantom --cases N --seed S` is
rendered once (tools/phantom_in_memory.py), then one process per training seed runs the CLI's own
`training.train.train_on_bank` (same recipe, trust fit, metrics and model card) and, with --heldout-cases,
scores its model on the studies of another phantom seed (every case, true ROIs, indeterminate counted wrong).
The file-based equivalent of one seed:

  dvt-staging phantom --out data/p --cases N --seed S
  dvt-staging train --data data/p --config CONFIG --seed K --out runs/K

  python3 tools/train_in_memory.py OUT --config CONFIG [CONFIG ...] [--variant ResNet50] --cases 1200 --seed 300 --seeds 0 1 2
          [--epochs E] [--time-limit-min M] [--heldout-cases 60 --heldout-seed 9100]
"""
import argparse
import json
import os
import statistics
import time
from multiprocessing import get_context
from pathlib import Path

# isort: off
from phantom_in_memory import CLASSES, provenance, render_banks  # first: puts DVTStagingLib on the path
# isort: on

import torch  # noqa: E402
from DVTStagingLib.models.config import load_config, variant  # noqa: E402
from DVTStagingLib.staging.inference import Stager  # noqa: E402
from DVTStagingLib.training.calibration import trusted_split_metrics  # noqa: E402
from DVTStagingLib.training.finetune import finetune_config, parent_staging  # noqa: E402
from DVTStagingLib.training.train import Distributed, train_on_bank  # noqa: E402


def _config(args, name):
    cfg = load_config(name) if isinstance(name, str) else name     # --init gives the fine-tuning config itself
    return variant(cfg, args.variant) if args.variant else cfg


def _heldout_scores(model, trust, bank, dev) -> dict:
    return trusted_split_metrics(model, trust, bank, dev, CLASSES)


def _train_one(args, cfg, seed: int, bank, heldout, threads: int, out: Path, parent=None):
    torch.set_num_threads(threads)
    dev = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    model_id = f"{_folder(cfg)}-s{seed}"
    card = train_on_bank(bank, cfg, out, provenance(args.cases, args.seed), CLASSES, seed, dev, Distributed(dev),
                         model_id=model_id, publish=False, epochs=args.epochs,
                         time_limit_s=None if args.time_limit_min is None else args.time_limit_min * 60,
                         data_name=f"phantom seed {args.seed}", bf16=args.bf16, parent=parent)
    if heldout is not None:
        stager = Stager(str(out / f"{model_id}.json"), str(dev))     # the saved model, as `stage` loads it
        card["metrics"][f"heldout_seed_{args.heldout_seed}"] = _heldout_scores(stager.model, stager.trust, heldout, dev)
        (out / f"{model_id}.heldout.json").write_text(json.dumps(card["metrics"], indent=1), encoding="utf-8")


def _summary(rows: list[dict]) -> dict:
    out = {}
    for key in sorted({k for r in rows for k in r if k != "seed"}):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = {"mean": round(statistics.mean(values), 4),
                        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--config", nargs="+",
                   help="config names or JSON files (several: trained side by side into OUT/NAME/seed-K; "
                        "NAME@K: with the first K of --seeds)")
    p.add_argument("--init", default=None,
                   help="instead of --config: fine-tune this catalogued model (ID or card), `train --init`'s recipe")
    p.add_argument("--variant", default=None, help="a comparison variant of it (e.g. ResNet50)")
    p.add_argument("--cases", type=int, default=1200)
    p.add_argument("--seed", type=int, default=300, help="phantom seed of the training studies")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, run side by side")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--time-limit-min", type=float, default=None)
    p.add_argument("--heldout-cases", type=int, default=0)
    p.add_argument("--heldout-seed", type=int, default=9100)
    p.add_argument("--heldout-style", default="analytic",
                   help="phantom style of the held-out studies (a held-out style: the external site)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for training on a GPU")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    args = p.parse_args()
    if (args.config is None) == (args.init is None):
        p.error("give --config or --init")
    parent = None
    if args.init is not None:     # the parent's network with the fine-tuning recipe; its epochs are the recipe's
        parent = parent_staging(args.init)
        args.config, args.epochs = [finetune_config(parent[1], args.epochs)], None
    started = time.time()
    # NAME@K: this config with the first K of --seeds only.  The parent never touches CUDA: trainers are forked.
    wanted = [(name.rsplit("@", 1)[0], int(name.rsplit("@", 1)[1])) if isinstance(name, str) and "@" in name
              else (name, len(args.seeds)) for name in args.config]
    configs = [_config(args, name) for name, _ in wanted]
    seeds_of = {id(cfg): args.seeds[:k] for cfg, (_, k) in zip(configs, wanted)}
    # One bank per distinct input (and crops or not); every study is rendered once for all of them.
    inputs = []
    for key in map(_input_key, configs):
        if key not in inputs:
            inputs.append(key)
    banks, heldouts = {}, {}
    for crops, margin in {(k[1], k[2]) for k in inputs}:
        keys = [k for k in inputs if k[1:] == (crops, margin)]
        specs = [k[0] for k in keys]
        banks.update(zip(keys, render_banks(args.cases, args.seed, specs, crops, margin, args.workers)))
        if args.heldout_cases:     # scored whole: every case, whatever its split
            heldouts.update(zip(keys, render_banks(args.heldout_cases, args.heldout_seed, specs, crops, margin,
                                                   args.workers, style=args.heldout_style, for_training=False)))
    print(f"banks: {len(banks)} inputs, {len(next(iter(banks.values())).rois)} ROIs each "
          f"({time.time() - started:.0f} s)", flush=True)
    runs = [(cfg, seed, args.out / f"seed-{seed}" if len(configs) == 1 else args.out / _folder(cfg) / f"seed-{seed}")
            for cfg in configs for seed in seeds_of[id(cfg)]]
    threads = max(1, (os.cpu_count() or 2) // len(runs))
    ctx = get_context("fork")
    procs = []
    for cfg, seed, out in runs:
        key = _input_key(cfg)
        procs.append(ctx.Process(target=_train_one,
                                 args=(args, cfg, seed, banks[key], heldouts.get(key), threads, out, parent)))
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    for cfg in configs:
        own = [(seed, out, proc) for (c, seed, out), proc in zip(runs, procs) if c is cfg]
        _write_summary(args, cfg, own, own[0][1].parent, started)
    print(json.dumps({"seconds": round(time.time() - started, 1)}))


def _input_key(cfg) -> tuple:
    """What a slice bank depends on: the input spec, crops (the baselines) or not, and the crop margin."""
    return cfg.input, cfg.architecture != "vdpf", cfg.crop_margin_px


def _folder(cfg) -> str:
    return cfg.name.replace(":", "-").replace(" ", "")


def _write_summary(args, cfg, runs: list, folder: Path, started: float) -> None:
    rows = []
    for seed, out, proc in runs:
        cards = sorted(out.glob("*.heldout.json")) or sorted(out.glob("*-s*.json"))
        if not cards:
            print(f"{cfg.name} seed {seed}: no model (exit code {proc.exitcode})", flush=True)
            continue
        data = json.loads(cards[0].read_text())
        metrics = data.get("metrics", data)
        row = {"seed": seed}
        for part, scores in metrics.items():
            if isinstance(scores, dict) and "macro_f1" in scores:
                row[f"{part}_macro_f1"] = scores["macro_f1"]
                row[f"{part}_ece"] = scores.get("ece")
                row[f"{part}_indeterminate"] = scores.get("indeterminate_rate")
        rows.append(row)
    summary = {"config": cfg.to_dict(), "variant": args.variant, "cases": args.cases, "phantom_seed": args.seed,
               "heldout": {"cases": args.heldout_cases, "seed": args.heldout_seed} if args.heldout_cases else None,
               "rows": rows, "summary": _summary(rows), "seconds": round(time.time() - started, 1)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    for key, s in summary["summary"].items():
        print(f"{cfg.name} {key}: {s['mean']:.3f} ± {s['sd']:.3f} (n={s['n']})", flush=True)


if __name__ == "__main__":
    main()
