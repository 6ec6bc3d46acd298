"""Compare staging fine-tuning recipes on a site: `adapt`'s split of SITE (train/val), each recipe scored on
every study of EVAL with the true ROIs (trust re-fitted on the site, no content check).

    PYTHONPATH=DVTStaging python tools/finetune_recipes.py --site SITE --eval EVAL \
        '{"name": "default"}' '{"name": "encoder-full", "enc": 1.0, "epochs": 30, "patience": 10}' ...

Each recipe is JSON: lr_factor (of the parent's training lr), epochs, patience, enc (the encoder's share of the
lr), warm (warm-up epochs), seed.  One JSON line per recipe on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

import torch  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.research.adapt import site_splits  # noqa: E402
from DVTStagingLib.training.calibration import fit_trust, trusted_predictions  # noqa: E402
from DVTStagingLib.training.finetune import parent_staging  # noqa: E402
from DVTStagingLib.training.metrics import staging_metrics  # noqa: E402
from DVTStagingLib.training.slice_bank import build_slice_bank  # noqa: E402
from DVTStagingLib.training.train import VAL_SLICES_PER_ROI, Distributed, train_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (as adapt --seed)")
    parser.add_argument("recipes", nargs="+")
    args = parser.parse_args(argv)
    site = site_splits(load_dataset(args.site), args.seed)
    held = load_dataset(args.eval)
    entry, cfg0, state = parent_staging(None)
    bank, eval_bank = build_slice_bank(site, cfg0.input), build_slice_bank(held, cfg0.input)
    dev = torch.device("cpu")
    for text in args.recipes:
        r = {"name": "default", "lr_factor": 0.3, "epochs": 15, "patience": 5, "enc": 0.1, "warm": 1, "seed": 0,
             **json.loads(text)}
        cfg = replace(cfg0, lr=cfg0.lr * r["lr_factor"], epochs=r["epochs"], warmup_epochs=r["warm"],
                      patience=r["patience"])
        train, val = bank.split("train"), bank.split("val")
        started = time.perf_counter()
        model, record = train_model(cfg, train, val.thinned(VAL_SLICES_PER_ROI), None, r["seed"], dev,
                                    Distributed(dev), init_state=state, encoder_lr_scale=r["enc"], log_name="recipe")
        trust, _ = fit_trust(model, train, val, dev)
        probs, reasons, _ = trusted_predictions(model, trust, eval_bank, dev)
        with_trust = staging_metrics(eval_bank.roi_labels(), probs, list(held.classes), [w is not None for w in reasons])
        argmax = staging_metrics(eval_bank.roi_labels(), probs, list(held.classes))
        print(json.dumps({**r, "best_epoch": record["best_epoch"], "epochs_run": record["epoch"],
                          "seconds": round(time.perf_counter() - started),
                          "macro_f1": round(with_trust["macro_f1"], 3),
                          "indeterminate": round(with_trust["indeterminate_rate"], 3),
                          "macro_f1_argmax": round(argmax["macro_f1"], 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
