"""How well the thrombus/muscle ratio of the results table (read from the ROI box alone,
imaging.signal_ratio.estimated_ratio_in_box) follows the ratio each phantom thrombus was drawn with
(truth.json), per dataset: Spearman correlation, median measured/drawn, and the share within x1.5 of it;
from the box alone, and as `stage` reports it for a hand-placed ROI (the thrombus pixels the bundled
detector's content check finds in the box, the box alone where it finds too few).
Where a case has the phantom's tissue masks, the same for the ratio measured with them (the ceiling).
With --detected, the same on the bundled detector's ROIs (each matched to the true ROI it overlaps most):
from the box alone, and with the detector's thrombus pixels inside it (what `stage --auto-roi` reports).

    PYTHONPATH=DVTStaging python tools/ratio_agreement.py [--detected] DATASET [DATASET ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))

from DVTStagingLib.imaging.signal_ratio import estimated_ratio_in_box, thrombus_muscle_ratio  # noqa: E402
from DVTStagingLib.io.dataset import load_dataset  # noqa: E402
from DVTStagingLib.io.roi import read_rois  # noqa: E402
from DVTStagingLib.io.segmentation import MUSCLE, THROMBUS, read_segmentation  # noqa: E402
from DVTStagingLib.io.volume import read_volume  # noqa: E402
from DVTStagingLib.models.config import InputSpec  # noqa: E402
from DVTStagingLib.staging.slices import prepare_study  # noqa: E402
from DVTStagingLib.training.cue_analysis import truth_cues  # noqa: E402


def agreement(drawn: list[float], measured: list[float | None]) -> dict:
    pairs = np.array([(d, m) for d, m in zip(drawn, measured) if m is not None], float).reshape(-1, 2)
    if len(pairs) < 3:
        return {"n": len(pairs)}
    factor = pairs[:, 1] / pairs[:, 0]
    return {"n": len(pairs), "missing": len(drawn) - len(pairs), "spearman": round(float(spearmanr(*pairs.T)[0]), 3),
            "median_measured_over_drawn": round(float(np.median(factor)), 3),
            "within_x1.5": round(float(np.mean((factor <= 1.5) & (factor >= 1 / 1.5))), 3)}


def dataset_agreement(folder: Path) -> dict:
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.staging.content import content_check

    dataset, detector = load_dataset(folder), load_detector(None, "cpu")
    truth = truth_cues(dataset)
    drawn, from_box, with_check, from_masks = [], [], [], []
    for case in dataset.cases:
        volume = read_volume(dataset.path(case.image))
        study = prepare_study(volume, InputSpec())
        image = study.orientation.apply(volume.array)
        seg = read_segmentation(dataset.path(case.segmentation)) if case.segmentation else None
        for rel in case.rois:
            for roi in read_rois(dataset.path(rel)):
                drawn_thrombus = truth.get((case.id, roi.name))
                if drawn_thrombus is None:
                    continue
                drawn.append(float(drawn_thrombus["ratio"]))
                box, spacing = study.box(roi), study.orientation.spacing[1:]
                from_box.append(estimated_ratio_in_box(image, box, spacing))
                signal = content_check(detector, volume, roi, study).signal
                with_check.append(estimated_ratio_in_box(image, box, spacing, signal=signal))
                if seg is not None:
                    from_masks.append(thrombus_muscle_ratio(volume.array, (seg.labelmap == THROMBUS)
                                                            & roi.voxel_mask(volume), seg.labelmap == MUSCLE))
    out = {"data": str(folder), "box_estimate": agreement(drawn, from_box),
           "as_stage_reports_it": agreement(drawn, with_check)}
    if len(from_masks) == len(drawn):
        out["with_tissue_masks"] = agreement(drawn, from_masks)
    return out


def detected_agreement(folder: Path) -> dict:
    from DVTStagingLib.detection.detector import detect_rois, load_detector

    dataset, detector = load_dataset(folder), load_detector(None, "cpu")
    truth = truth_cues(dataset)
    drawn, from_box, with_segment = [], [], []
    for case in dataset.cases:
        volume = read_volume(dataset.path(case.image))
        study = prepare_study(volume, InputSpec())
        image, spacing = study.orientation.apply(volume.array), study.orientation.spacing[1:]
        true_boxes = [(r, r.voxel_mask(volume)) for rel in case.rois for r in read_rois(dataset.path(rel))]
        found = detect_rois(volume, model=detector, device="cpu", progress=False)
        segment = study.orientation.apply(found.thrombus_labelmap(1) > 0)
        for roi in found.rois:
            mask = roi.voxel_mask(volume)
            overlap, match = max(((int((mask & m).sum()), r) for r, m in true_boxes), default=(0, None),
                                 key=lambda x: x[0])
            drawn_thrombus = truth.get((case.id, match.name)) if overlap else None
            if drawn_thrombus is None:
                continue
            box = study.box(roi)
            drawn.append(float(drawn_thrombus["ratio"]))
            from_box.append(estimated_ratio_in_box(image, box, spacing))
            with_segment.append(estimated_ratio_in_box(image, box, spacing, segment))
    return {"data": str(folder), "detected_rois_matched": len(drawn), "box_estimate": agreement(drawn, from_box),
            "with_detector_segment": agreement(drawn, with_segment)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    detected = "--detected" in argv
    folders = [a for a in argv if a != "--detected"]
    if not folders:
        print(__doc__, file=sys.stderr)
        return 2
    for folder in folders:
        print(json.dumps((detected_agreement if detected else dataset_agreement)(Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
