"""How far a site's stages can be told apart from the cues its phantom drew: a linear classifier (multinomial
logistic regression, class-balanced) on the drawn cues of one draw's thrombi (`truth.json`), scored on
another draw's.  A yardstick for the staging models' learning curve (issue 19): what the cues allow, and
what the thrombus/muscle ratio alone allows.

    PYTHONPATH=DVTStaging python tools/cue_ceiling.py --train SITE_POOL --eval SITE_EVAL
    PYTHONPATH=DVTStaging python tools/cue_ceiling.py --specs 2000 --train-seed 1 --eval-seed 2

`--specs N`: the training style's drawn cues of `dvt-staging phantom --cases N --seed S`, taken from the drawing
plans alone (phantom.spec, nothing rendered): what the checked-out training style's cue table allows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

from DVTStagingLib.core.stages import STAGES  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.training.cue_analysis import CUES as READERS  # noqa: E402
from DVTStagingLib.training.cue_analysis import truth_cues  # noqa: E402

CUES = ("ratio", "vein_scale", "edema_mm", "channels", "wall_thickening_mm", "collaterals")
SETS = {"thrombus/muscle ratio only": ("ratio",), "every drawn cue": CUES,
        "every drawn cue but the ratio": CUES[1:]}


def drawn_cues(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """[thrombi, cues] (the ratio as its log) and the stage index of each thrombus of a phantom dataset, read
    as evaluate's cue analysis reads them (training.cue_analysis)."""
    thrombi = truth_cues(load_dataset(folder)).values()
    rows = [[float(READERS[c][0](t)) for c in CUES] for t in thrombi]
    cues = np.asarray(rows, np.float32)
    cues[:, 0] = np.log(cues[:, 0])
    return cues, np.asarray([STAGES.index(t["stage"]) for t in thrombi])


def planned_cues(n_cases: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """drawn_cues of the training style's `phantom --cases N --seed S`, from its specs (no rendering)."""
    from DVTStagingLib.phantom.spec import sample_case
    from DVTStagingLib.phantom.writer import plan_cases

    rows, stages = [], []
    for plan in plan_cases(n_cases, seed):
        for t in sample_case(plan["seed"], plan["stages"]).thrombi:
            truth = {"stage": t.stage, "ratio": t.ratio, "vein_scale": t.vein_scale, "edema_mm": t.edema_mm,
                     "channels": len(t.channels), "wall_thickening_mm": t.wall_thickening_mm,
                     "collaterals": len(t.collaterals)}
            rows.append([float(READERS[c][0](truth)) for c in CUES])
            stages.append(STAGES.index(t.stage))
    cues = np.asarray(rows, np.float32)
    cues[:, 0] = np.log(cues[:, 0])
    return cues, np.asarray(stages)


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    scores = [2 * np.sum((pred == c) & (truth == c)) / max(np.sum(pred == c) + np.sum(truth == c), 1)
              for c in range(len(STAGES))]
    return float(np.mean(scores))


def fit_and_score(x_train, y_train, x_eval, y_eval) -> float:
    mean, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xa, xb = torch.from_numpy((x_train - mean) / sd), torch.from_numpy((x_eval - mean) / sd)
    linear = torch.nn.Linear(xa.shape[1], len(STAGES))
    counts = torch.tensor(np.bincount(y_train, minlength=len(STAGES)), dtype=torch.float32).clamp(min=1)
    weight = counts.sum() / counts / len(STAGES)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=500)
    target = torch.from_numpy(y_train)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xa), target, weight=weight) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    torch.manual_seed(0)
    optimizer.step(closure)
    with torch.no_grad():
        return macro_f1(y_eval, linear(xb).argmax(1).numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, help="a phantom dataset whose thrombi the classifier learns from")
    parser.add_argument("--eval", type=Path, help="another phantom dataset it is scored on")
    parser.add_argument("--specs", type=int, default=None,
                        help="instead: N studies of the training style drawn as plans only, seeds below")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--eval-seed", type=int, default=2)
    args = parser.parse_args(argv)
    if args.specs:
        (xa, ya), (xb, yb) = planned_cues(args.specs, args.train_seed), planned_cues(args.specs, args.eval_seed)
    elif args.train and args.eval:
        (xa, ya), (xb, yb) = drawn_cues(args.train), drawn_cues(args.eval)
    else:
        parser.error("give --train and --eval, or --specs N")
    for name, cues in SETS.items():
        cols = [CUES.index(c) for c in cues]
        print(json.dumps({"cues": name, "train_thrombi": len(ya), "eval_thrombi": len(yb),
                          "macro_f1": round(fit_and_score(xa[:, cols], ya, xb[:, cols], yb), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
