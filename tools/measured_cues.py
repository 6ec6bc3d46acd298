"""What a hand measurement of the cues in the image shows: per ROI, features read from the image and its box
alone (no masks, no truth), a linear classifier fitted on one dataset's ROIs and scored on another's -- the
counterpart of tools/cue_ceiling.py, which fits the cues the phantom *drew*.  If the drawn cues separate the
stages and the measured ones do not, the cues are faint in the images, not only unseen by the network.

    PYTHONPATH=DVTStaging python tools/measured_cues.py --train DATASET --eval DATASET
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cue_ceiling import fit_and_score  # noqa: E402
from DVTStagingLib.core.stages import STAGES  # noqa: E402
from DVTStagingLib.imaging.signal_ratio import estimated_ratio_in_box, muscle_around_box  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.io.roi import read_rois  # noqa: E402
from DVTStagingLib.io.volume import read_volume  # noqa: E402
from DVTStagingLib.models.config import InputSpec  # noqa: E402
from DVTStagingLib.staging.slices import prepare_study  # noqa: E402

FEATURES = ("thrombus/muscle ratio (the results table's)", "core p10", "core p90", "core variation",
            "box width mm", "box length mm", "rim 0-2.5 mm", "perivascular 2.5-12 mm", "perivascular variation",
            "perivascular flow voids", "perivascular bright", "core dark", "core bright")
SETS = {"the measured ratio only": (0,), "every measured feature": tuple(range(len(FEATURES)))}


def roi_features(image: np.ndarray, box: np.ndarray, spacing: tuple[float, float, float]) -> list[float] | None:
    """FEATURES of one ROI (intensities over the muscle level around it), or None where no muscle is found."""
    ratio = estimated_ratio_in_box(image, box, spacing[1:])
    slices = np.flatnonzero(box.any(axis=(1, 2)))
    img = image[slices].astype(np.float32)
    rows, cols = np.flatnonzero(box[slices].any(axis=(0, 2))), np.flatnonzero(box[slices].any(axis=(0, 1)))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1

    def grown(mm):
        dr, dc = int(round(mm / spacing[1])), int(round(mm / spacing[2]))
        m = np.zeros(img.shape[1:], bool)
        m[max(r0 - dr, 0): r1 + dr, max(c0 - dc, 0): c1 + dc] = True
        return m

    muscle = muscle_around_box(image, box, spacing[1:])
    if ratio is None or muscle is None:
        return None
    qr, qc = (r1 - r0) // 4, (c1 - c0) // 4
    core = img[:, r0 + qr: r1 - qr, c0 + qc: c1 - qc].ravel() / muscle
    rim = img[:, grown(2.5) & ~grown(0.0)].ravel() / muscle
    around = img[:, grown(12.0) & ~grown(2.5)].ravel() / muscle
    return [ratio, np.percentile(core, 10), np.percentile(core, 90), core.std() / max(core.mean(), 1e-3),
            0.5 * ((r1 - r0) * spacing[1] + (c1 - c0) * spacing[2]), len(slices) * spacing[0],
            np.median(rim), np.median(around), around.std() / max(around.mean(), 1e-3), np.mean(around < 0.4),
            np.mean(around > 1.5), np.mean(core < 0.5), np.mean(core > 1.5)]


def case_features(job) -> list[tuple[list[float], int]]:
    folder, case_id = job
    dataset = load_dataset(folder)
    case = next(c for c in dataset.cases if c.id == case_id)
    volume = read_volume(dataset.path(case.image))
    study = prepare_study(volume, InputSpec())
    image = study.orientation.apply(volume.array)
    out = []
    for rel in case.rois:
        for roi in read_rois(dataset.path(rel)):
            stage = case.stage_of(roi.name)
            row = roi_features(image, study.box(roi), study.orientation.spacing) if stage else None
            if row is not None:
                out.append((row, STAGES.index(stage)))
    return out


def measured_cues(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """[ROIs, FEATURES] (ratios as logs) and the stage index of each labeled ROI of a dataset."""
    jobs = [(folder, c.id) for c in load_dataset(folder).cases]
    with ProcessPoolExecutor(2) as pool:
        rows = [r for case in pool.map(case_features, jobs) for r in case]
    x = np.asarray([r for r, _ in rows], np.float32)
    x[:, 0] = np.log(x[:, 0])
    return x, np.asarray([s for _, s in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    args = parser.parse_args(argv)
    (xa, ya), (xb, yb) = measured_cues(args.train), measured_cues(args.eval)
    for name, cols in SETS.items():
        print(json.dumps({"features": name, "train_rois": len(ya), "eval_rois": len(yb),
                          "macro_f1": round(fit_and_score(xa[:, cols], ya, xb[:, cols], yb), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
