"""Would an answer that must survive site-like perturbations hold back the wrong ones?  Each ROI of a dataset is
staged as `stage` decides (true ROIs, the model's trust, no content check) on its slices as they are and
perturbed the ways sites differ (a T1 contrast curve, the percentile scale, blur, noise); an "agreement
rule" would answer only where every perturbation keeps the stage.  Prints, per dataset, the answered ROIs
right and wrong with and without the rule, and per perturbation how many of each it flips.

    PYTHONPATH=DVTStaging python tools/perturbation_agreement.py MODEL DATASET [DATASET ...]

MODEL: a catalogue id or model card ("bundled": the bundled model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.staging.inference import Stager  # noqa: E402
from DVTStagingLib.training.calibration import roi_probabilities  # noqa: E402
from DVTStagingLib.training.predict import model_inputs  # noqa: E402
from DVTStagingLib.training.slice_bank import build_slice_bank  # noqa: E402


def blurred(x: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    k = torch.exp(-torch.arange(-2, 3).float() ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1))


def perturbations(clip: float) -> dict:
    return {"T1 curve gamma 0.8": lambda x, g: clip * (x / clip).clamp(min=0) ** 0.8,
            "T1 curve gamma 1.25": lambda x, g: clip * (x / clip).clamp(min=0) ** 1.25,
            "scale x0.9": lambda x, g: (x * 0.9).clamp(0, clip),
            "scale x1.1": lambda x, g: (x * 1.1).clamp(0, clip),
            "blur 0.8 px": lambda x, g: blurred(x),
            "noise 0.04": lambda x, g: (x + 0.04 * torch.randn(x.shape, generator=g)).clamp(0, clip)}


@torch.inference_mode()
def decisions(stager: Stager, bank, change) -> tuple[np.ndarray, np.ndarray]:
    """(per-ROI calibrated probabilities, answered or not) with `change` applied to both views' images."""
    model, trust, generator = stager.model.eval(), stager.trust, torch.Generator().manual_seed(0)
    logits, features = [], []
    for start in range(0, len(bank.images), 64):
        images, masks, crops, zoomed = bank.tensors(slice(start, start + 64))
        images = change(images, generator)
        zoomed = None if zoomed is None else change(zoomed, generator)
        f, _ = model.embed(*model_inputs(model, images, masks, crops, zoomed))
        logits.append(model.head(f).float())
        features.append(f.float())
    logits, features = torch.cat(logits).double().numpy(), torch.cat(features).double().numpy()
    n = len(bank.rois)
    probs = roi_probabilities(logits, bank.roi_of_slice, n, trust.temperature)
    answered = np.array([trust.decide(p, trust.roi_ood_score(features[bank.roi_of_slice == r])) is None
                         for r, p in enumerate(probs)])
    return probs, answered


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    stager = Stager(None if argv[0] == "bundled" else argv[0], "cpu")
    for folder in argv[1:]:
        bank = build_slice_bank(load_dataset(folder), stager.cfg.input)
        truth = bank.roi_labels()
        probs, answered = decisions(stager, bank, lambda x, g: x)
        stage = probs.argmax(1)
        right, wrong = answered & (stage == truth), answered & (stage != truth)
        kept, flips = np.ones(len(truth), bool), {}
        for name, change in perturbations(stager.cfg.input.clip_max).items():
            same = decisions(stager, bank, change)[0].argmax(1) == stage
            kept &= same
            flips[name] = {"right": int((right & ~same).sum()), "wrong": int((wrong & ~same).sum())}
        print(json.dumps({"data": folder, "rois": len(truth),
                          "answered_right": int(right.sum()), "answered_wrong": int(wrong.sum()),
                          "with_rule_right": int((right & kept).sum()), "with_rule_wrong": int((wrong & kept).sum()),
                          "flipped_by": flips}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
