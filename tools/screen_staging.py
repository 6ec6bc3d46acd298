"""Screen a staging model on datasets: true ROIs, the model's own trust (temperature, threshold, OOD), without
the detector's content check, every case (indeterminate counted wrong).  A quick check of a candidate model;
`dvt-staging evaluate` gives the full figures (content check, detection, evidence).

    PYTHONPATH=DVTStaging python tools/screen_staging.py MODEL DATASET [DATASET ...]

MODEL: a catalogue id or model card ("bundled": the bundled model).  One JSON line per dataset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

import torch  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.staging.inference import Stager  # noqa: E402
from DVTStagingLib.training.calibration import trusted_predictions  # noqa: E402
from DVTStagingLib.training.metrics import staging_metrics  # noqa: E402
from DVTStagingLib.training.slice_bank import build_slice_bank  # noqa: E402


def trusted_metrics(model, trust, bank, classes: list[str], device) -> dict:
    """staging_metrics of a model on a slice bank's ROIs, each answered or abstained as `stage` decides."""
    probs, reasons, _ = trusted_predictions(model, trust, bank, device)
    return staging_metrics(bank.roi_labels(), probs, classes, [r is not None for r in reasons])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    stager = Stager(None if argv[0] == "bundled" else argv[0], "cpu")
    for folder in argv[1:]:
        dataset = load_dataset(folder)
        bank = build_slice_bank(dataset, stager.cfg.input)
        m = trusted_metrics(stager.model, stager.trust, bank, list(dataset.classes), torch.device("cpu"))
        print(json.dumps({"model": stager.entry.id, "data": folder, "rois": m["n"],
                          "macro_f1": round(m["macro_f1"], 3), "indeterminate_rate": round(m["indeterminate_rate"], 3),
                          "confidently_wrong_rate": round(m["confidently_wrong_rate"], 3),
                          "confusion": m["confusion"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
