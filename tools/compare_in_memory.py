"""The comparison table of `dvt-staging evaluate --compare`, on phantom studies rendered in memory.

For a machine without SimpleITK/slicerio (e.g. a lent GPU box): the studies of
`dvt-staging phantom --cases N --seed S` are re-rendered from the same seeds
(bit-identical to the files) instead of read, then every variant is trained
and scored exactly as `evaluate --compare` does.

  python3 tools/compare_in_memory.py OUT [--cases 250] [--seed 100] [--epochs 30] [--budget-s 420] [--variants ...]
"""
import argparse
import json
import time
from pathlib import Path

import torch

# isort: off
from phantom_in_memory import CLASSES, render_bank  # first: puts DVTStagingLib on the path
# isort: on

from DVTStagingLib.training.evaluate import compare_on_bank, comparison_base, comparison_labels, comparison_table


def main():
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
    base = comparison_base(ARGS.config, ARGS.epochs)
    bank = render_bank(ARGS.cases, ARGS.seed, base.input, True, base.crop_margin_px)
    print(f"bank: {len(bank.rois)} ROIs, {len(bank.images)} slices in {time.time() - started:.0f} s", flush=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
