"""The comparison table of `dvt-staging evaluate --compare`, on phantom studies rendered in memory.

For a machine without SimpleITK/slicerio (e.g. a lent GPU box): the studies of
`dvt-staging phantom --cases N --seed S` are re-rendered from the same seeds
(bit-identical to the files) instead of read, then every variant is trained
and scored exactly as `evaluate --compare` does.

  python3 tools/compare_in_memory.py OUT [--cases 250] [--seed 100] [--epochs 30] [--budget-s 420] [--variants ...]
"""
import argparse
import json
import os
import sys
import time
import types
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))
for name in ("SimpleITK", "slicerio", "jsonschema"):      # imported by the core, never called here
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = types.ModuleType(name)

import torch  # noqa: E402
from DVTStagingLib.core.stages import STAGES as CLASSES  # noqa: E402
from DVTStagingLib.phantom.study import make_study  # noqa: E402
from DVTStagingLib.phantom.writer import plan_cases  # noqa: E402
from DVTStagingLib.staging.slices import prepare_study  # noqa: E402
from DVTStagingLib.training.evaluate import compare_on_bank, comparison_base, comparison_labels, comparison_table  # noqa: E402
from DVTStagingLib.training.slice_bank import bank_from_items, roi_items  # noqa: E402

ARGS = None


def _items(plan):
    torch.set_num_threads(1)
    study = make_study(plan["seed"], plan["stages"])
    cfg = comparison_base(ARGS.config, ARGS.epochs)
    view = prepare_study(study.volume, cfg.input)
    case = f"phantom-{ARGS.seed}-{plan['index']:04d}"
    return [roi_items(view, roi, {"case": case, "roi": roi.name, "stage": t["stage"], "label": CLASSES.index(t["stage"]),
                                  "split": plan["split"]}, True, cfg.crop_margin_px)
            for roi, t in zip(study.rois, study.truth["thrombi"])]


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--cases", type=int, default=250)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--config", default="vdpf-small")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=420, help="start no new variant after this many seconds")
    p.add_argument("--variants", nargs="+", default=None)
    ARGS = p.parse_args()
    started = time.time()
    ARGS.out.mkdir(parents=True, exist_ok=True)
    plans = plan_cases(ARGS.cases, ARGS.seed)
    with get_context("fork").Pool(min(16, os.cpu_count() or 1)) as pool:
        items = [i for per_case in pool.map(_items, plans, chunksize=2) for i in per_case]
    bank = bank_from_items(items, with_crops=True)
    print(f"bank: {len(bank.rois)} ROIs, {len(bank.images)} slices in {time.time() - started:.0f} s", flush=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = comparison_base(ARGS.config, ARGS.epochs)
    header = {"schema": "dvt-staging/comparison@1", "dataset": f"phantom --cases {ARGS.cases} --seed {ARGS.seed} (in memory)",
              "seed": ARGS.train_seed, "device": str(dev), "torch": torch.__version__}
    rows = []
    for label in comparison_labels(ARGS.variants):
        if time.time() - started > ARGS.budget_s:
            print(f"budget spent: {label} and later variants not run", flush=True)
            break
        rows = compare_on_bank(bank, base, [label], list(CLASSES), ARGS.train_seed, dev, ARGS.out, header, rows)
    print(comparison_table(rows))
    (ARGS.out / "comparison.md").write_text(comparison_table(rows) + "\n", encoding="utf-8")
    print(json.dumps({"seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()
