"""The jobs behind `dvt-staging detect` and `dvt-staging train-detector`: inputs checked, work done, files written."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserError
from ..core.progress import status

DETECT_OUTPUTS = ("rois.mrk.json", "detections.json", "thrombus.seg.nrrd")


def detect_study(input_path, out, model=None, device="auto", overwrite=False, segmentation=False, detector=None):
    """Detect thrombus ROIs in one study and write rois.mrk.json, detections.json (and thrombus.seg.nrrd).

    `detector`: an already loaded `detector.Detector` (the staging service keeps one), used instead of `model`."""
    from ..core.files import prepare_output
    from ..io.roi import write_rois
    from ..io.volume import check_image_content, read_volume
    from ..models.catalog import resolve, verify_weights

    volume = read_volume(Path(input_path))
    check_image_content(volume, str(input_path))
    if detector is None:
        verify_weights(resolve(model, "detector"))
    out = prepare_output(Path(out), overwrite, names=DETECT_OUTPUTS)
    # The network loads only now: a wrong input or a tampered model is refused without paying for torch.
    from ..io.segmentation import THROMBUS, THROMBUS_SEGMENT, write_segmentation
    from .detector import detect_rois

    result = detect_rois(volume, model=detector or model, device=device, progress=True, keep_probability=segmentation)
    write_rois(out / "rois.mrk.json", result.rois)
    doc = result.to_json(volume)
    doc["input"] = dict(doc["input"], file=str(input_path))
    (out / "detections.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    if segmentation:
        write_segmentation(out / "thrombus.seg.nrrd", result.thrombus_labelmap(THROMBUS), volume, THROMBUS_SEGMENT)
    if result.warning:
        status(f"warning: {result.warning}")
    if not result.rois:
        status(f"detect: no thrombus found in {input_path}; wrote an empty ROI file")
    else:
        found = ", ".join(f"{r.name} ({s:.2f})" for r, s in zip(result.rois, result.scores))
        status(f"detect: {len(result.rois)} thrombus ROI(s) in {input_path}: {found}")
    status(f"detect: wrote {out / 'rois.mrk.json'} and {out / 'detections.json'} "
           f"in {result.timings['total']:.1f} s on {result.detector.device}")
    return result


def train_detector_command(data, out, epochs=None, seed=0, device="auto", steps_per_epoch=None, batch=16,
                           model_id="detector-phantom", init=None):
    """Train from a dataset folder (train split), select on val, report on test; write weights and card to out.

    `init` (catalogue id or card): fine-tune that detector (training.finetune_config; studies with boxes but
    no thrombus mask learn from its pseudo-masks inside the boxes)."""

    from ..io.dataset import load_dataset
    from ..models import catalog
    from ..models.devices import resolve_device
    from ..phantom.styles import refuse_held_out_style
    from .detector import load_detector
    from .training import TrainingConfig, finetune_config, train_and_save
    from .view import DetectorInput

    if any(v is not None and v < 1 for v in (epochs, steps_per_epoch, batch)):
        raise UserError("--epochs, --steps-per-epoch and --batch must be at least 1")
    dataset = load_dataset(data)
    if init is None:
        refuse_held_out_style(dataset, "train-detector")
    splits = {name: dataset.split(name) for name in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise UserError(f"{data}: the detector needs cases in both the train and the val split "
                        f"(found {len(splits['train'])} and {len(splits['val'])})")
    out = Path(out)
    if (out / f"{model_id}.json").exists():
        raise UserError(f"{out} already holds {model_id}.json; choose another --out")
    torch_device = resolve_device(device)
    parent = catalog.resolve(init, "detector") if init is not None else None
    box_parent = load_detector(parent.card_path, device) if parent is not None else None
    spec = box_parent.spec if box_parent is not None else DetectorInput()
    prepared = load_detector_studies(dataset, splits, spec, box_parent)
    if parent is not None:
        config = finetune_config(parent, seed, epochs, steps_per_epoch, batch)
    else:
        config = TrainingConfig(epochs=epochs or 25, steps_per_epoch=steps_per_epoch or 200, batch=batch, seed=seed)
    training_data = dataset.provenance()
    entry, test_metrics = train_and_save(prepared["train"], prepared["val"], prepared["test"], spec, config,
                                         torch_device, out, model_id, training_data, parent=parent)
    status(f"train-detector: wrote {entry.card_path} (weights sha256 {entry.card['sha256'][:12]}…)")
    if test_metrics:
        status("train-detector: test " + " ".join(
            f"{k}={test_metrics[k]:.3f}" for k in ("recall_3d", "false_rois_per_study", "sensitivity", "fppi",
                                                   "precision", "ap", "mean_iou_3d")
            if isinstance(test_metrics.get(k), float)))
    return entry


def load_detector_studies(dataset, splits: dict, spec, box_parent=None) -> dict:
    """Each split's cases prepared for detector training (box pseudo-masks from `box_parent` where a case has
    ROI boxes but no thrombus mask)."""
    from ..core.progress import Progress
    from .studies import load_case_study

    prepared = {}
    for name, cases in splits.items():
        bar = Progress(f"load-{name}", max(len(cases), 1))
        prepared[name] = []
        for case in cases:
            prepared[name].append(load_case_study(dataset, case, spec, box_parent=box_parent))
            bar.update()
    return prepared
