"""`dvt-staging evaluate`: metrics of a model on a dataset split, and the paper-style comparison table.

Per-ROI (per-thrombus) predictions are the mean of slice probabilities, as in
the paper.  The comparison trains every variant (VDPF ablations, Table 2-3;
crop baselines, Table 4) on the same train/val split with the same recipe and
seed, and scores each on the same test split.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.files import write_json_atomic
from ..core.progress import status
from ..core.stages import INDETERMINATE
from ..io.dataset import load_dataset
from ..models.config import ABLATIONS, BASELINES, ModelConfig, load_config, variant
from .metrics import staging_metrics

METRICS_SCHEMA = "dvt-staging/metrics@1"


def confusion_png(path: Path, metrics: dict, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.array(metrics["confusion"])
    classes = metrics["classes"]
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{cm[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted stage")
    ax.set_ylabel("true stage")
    ax.set_title(f"{title}\nACC {metrics['accuracy']:.3f}  macro F1 {metrics['macro_f1']:.3f}  (n={metrics['n']})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_png(path: Path, staging: dict, title: str) -> Path:
    """Reliability diagram: accuracy against confidence per bin, bar width = bin, the diagonal is perfect."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    bins = [b for b in staging["reliability"] if b["n"]]
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    ax.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["accuracy"] for b in bins],
           width=[b["high"] - b["low"] for b in bins], edgecolor="k", color="#1f77b4", alpha=0.7, label="accuracy")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#d62728", ms=4,
            label="mean confidence")
    for b in bins:
        ax.text((b["low"] + b["high"]) / 2, min(b["accuracy"] + 0.03, 0.97), str(b["n"]), ha="center", fontsize=7)
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (highest calibrated probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {staging['ece']:.3f}  (n={staging['n']} ROIs; numbers: ROIs per bin)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_model(data, model: str | None, out: Path, split: str = "test", device: str = "auto",
                   overwrite: bool = False, detector: str | None = None, explain: bool = True,
                   roi_jitter: int = 0) -> dict:
    """Metrics of the staging `model` and the `detector` (catalogue ids or cards; None: the bundled ones) on
    a dataset split (`data`: its folder, or a loaded io.dataset.Dataset): staging with the true ROIs (the
    content check by that detector), detection, and staging with the detected ROIs; `explain`: also how the
    evidence maps point at the thrombus (training.explanation).  A phantom dataset also gets the answers per
    drawn cue (training.cue_analysis); `roi_jitter` N > 0: N redrawn boxes per true ROI are staged too
    (training.roi_jitter)."""
    from ..io.dataset import Dataset
    from ..core.files import prepare_output
    from ..staging.inference import Stager
    from .calibration import (
        expected_calibration_error,
        reliability_bins,
        trusted_outputs,
    )
    from .slice_bank import build_slice_bank

    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    data = dataset.root
    out = prepare_output(Path(out), overwrite, names=("metrics.json", "confusion.png", "reliability.png"))
    stager = Stager(model, device)
    bank = build_slice_bank(dataset, stager.cfg.input, with_crops=stager.cfg.architecture != "vdpf",
                            crop_margin=stager.cfg.crop_margin_px)
    bank = bank if split == "all" else bank.split(split)
    if not bank.rois:
        raise UserError(f"{data}: the '{split}' split has no labeled ROI")
    outputs = trusted_outputs(stager.model, stager.trust, bank, stager.device)
    probs, reasons, scores = outputs.probabilities, outputs.reasons, outputs.ood_scores
    reasons = _with_content_check(dataset, bank, reasons, device, detector)
    labels = bank.roi_labels()
    staging = staging_metrics(labels, probs, list(dataset.classes), [r is not None for r in reasons])
    staging["unit"] = "thrombus ROI (mean of its slices' calibrated probabilities; indeterminate counts as wrong)"
    staging["ece"] = expected_calibration_error(probs, labels)
    staging["reliability"] = reliability_bins(probs, labels)
    staging["predictions"] = [{"case": r["case"], "roi": r["roi"], "truth": r["stage"],
                               "stage": dataset.classes[int(np.argmax(p))] if why is None else INDETERMINATE,
                               "reason": why, "ood_score": score, "site_score": site,
                               "probabilities": dict(zip(dataset.classes, map(float, p)))}
                              for r, p, why, score, site in zip(bank.rois, probs, reasons, scores,
                                                                outputs.site_scores)]
    metrics = {
        "schema": METRICS_SCHEMA,
        "dataset": dataset.provenance(),   # what was scored, not where it lay on this machine
        "split": split,
        "model": {"id": stager.entry.id, "sha256": stager.entry.card["sha256"], "config": stager.cfg.name},
        "staging": staging,
    }
    from .cue_analysis import cue_analysis

    cues = cue_analysis(dataset, staging["predictions"], list(dataset.classes))
    if cues is not None:          # a phantom: which cue the answers follow, and the wrong ones
        metrics["cues"] = cues
    if roi_jitter:
        metrics["roi_jitter"] = _jitter_section(dataset, _cases(dataset, split), stager, device, roi_jitter, detector)
    detection = _detection_section(dataset, split, device, out, stager, staging, detector)
    if detection is not None:
        metrics["detection"] = detection
    if explain and stager.explains:
        from .explanation import explain_cases

        metrics["explanation"] = explain_cases(dataset, _cases(dataset, split), stager)
    write_json_atomic(out / "metrics.json", metrics)
    confusion_png(out / "confusion.png", staging, f"{stager.entry.id} on {split}")
    reliability_png(out / "reliability.png", staging, f"{stager.entry.id} on {split}")
    status(f"evaluate: {split} macro F1 {staging['macro_f1']:.3f}, accuracy {staging['accuracy']:.3f}, "
           f"ECE {staging['ece']:.3f}, indeterminate {staging['indeterminate_rate']:.1%}, confidently wrong "
           f"{staging['confidently_wrong_rate']:.1%} (n={staging['n']} ROIs); wrote {out / 'metrics.json'}")
    if "roi_jitter" in metrics:
        j = metrics["roi_jitter"]
        status(f"evaluate: ROI redraws: {j['stable_rate']:.1%} stable (same stage or indeterminate), "
               f"{j['indeterminate_rate']:.1%} indeterminate ({j['redraws']} redraws of {j['rois']} ROIs)")
    return metrics


def _with_content_check(dataset, bank, reasons: list, device: str, detector_model=None) -> list:
    """The detector's thrombus-content check of `stage`, on the ROIs the model would answer."""
    from ..detection.detector import load_detector
    from ..detection.view import prepare_view
    from ..io.roi import read_rois
    from ..io.volume import read_volume
    from ..staging.content import thrombus_check

    detector = load_detector(detector_model, device)
    cases = {c.id: c for c in dataset.cases}
    reasons = list(reasons)
    for case_id in dict.fromkeys(r["case"] for r in bank.rois):
        todo = [n for n, r in enumerate(bank.rois) if r["case"] == case_id and reasons[n] is None]
        if not todo:
            continue
        case = cases[case_id]
        volume = read_volume(dataset.path(case.image))
        view = prepare_view(volume, detector.spec)
        rois = {roi.name: roi for f in case.rois for roi in read_rois(dataset.path(f))}
        for n in todo:
            _, reasons[n] = thrombus_check(detector, volume, rois[bank.rois[n]["roi"]], view)
    return reasons


def _jitter_section(dataset, cases, stager, device: str, per_roi: int, detector_model=None) -> dict:
    """ROI-redraw stability (training.roi_jitter) on the labeled true ROIs of `cases`."""
    from ..detection.detector import load_detector
    from ..io.roi import read_rois
    from ..io.volume import read_volume
    from .roi_jitter import jitter_stability

    # a generator: each volume is read when its turn comes
    studies = ((c.id, read_volume(dataset.path(c.image)),
                [r for f in c.rois for r in read_rois(dataset.path(f)) if c.stage_of(r.name)]) for c in cases)
    return jitter_stability(stager, load_detector(detector_model, device), studies, n=per_roi, total=len(cases))


def _cases(dataset, split: str):
    return list(dataset.cases) if split == "all" else dataset.split(split)


def _detection_section(dataset, split, device, out, stager, staging, detector=None) -> dict | None:
    """Detector metrics and staging with detected ROIs, when a detector is installed (or named)."""
    try:
        from ..detection.evaluation import evaluate_detection
        from ..models.catalog import list_models
    except ImportError:
        return None
    if detector is None and not list_models("detector"):
        return None
    cases = _cases(dataset, split)
    found = evaluate_detection(dataset, cases, model=detector, device=device, out_dir=out)
    section = dict(found["metrics"])
    section["staging_macro_f1_true_rois"] = staging["macro_f1"]
    detected = _staging_with_detected_rois(dataset, cases, found["rois"], stager)
    section["staging_macro_f1_detected_rois"] = detected["macro_f1"]
    section["staging_detected_rois"] = {k: detected[k] for k in ("n", "accuracy", "macro_f1", "indeterminate_rate",
                                                                 "per_class_auc")}
    return section


def _staging_with_detected_rois(dataset, cases, detected: dict, stager) -> dict:
    """Staging metrics when each true thrombus is staged from the detected ROI that overlaps it most.

    A thrombus that no detected ROI overlaps counts as an error, and so does an indeterminate answer.
    """
    from ..io.roi import read_rois
    from ..io.volume import read_volume

    classes = list(dataset.classes)
    truths, probs, abstained = [], [], []
    for case in cases:
        volume = read_volume(dataset.path(case.image))
        candidates = detected.get(case.id, [])
        _, staged = stager.stage(volume, candidates, want_attention=False, show_progress=False) if candidates else (None, [])
        masks = [r.roi.voxel_mask(volume) for r in staged]
        for roi_file in case.rois:
            for roi in read_rois(dataset.path(roi_file)):
                stage = case.stage_of(roi.name)
                if stage is None:
                    continue
                truth_mask = roi.voxel_mask(volume)
                overlaps = [float((m & truth_mask).sum()) for m in masks]
                truths.append(classes.index(stage))
                if overlaps and max(overlaps) > 0:
                    best = staged[int(np.argmax(overlaps))]
                    probs.append(best.probabilities)
                    abstained.append(best.reason is not None)
                else:
                    probs.append(np.full(len(classes), 1.0 / len(classes)))
                    abstained.append(True)      # missed by the detector: no answer for this thrombus
    return staging_metrics(truths, probs, classes, abstained)


# ---------------------------------------------------------------------------
# Comparison table (paper Tables 2-4 on one split)
# ---------------------------------------------------------------------------
def compare(data: Path, out: Path, base: str = "vdpf-small", epochs: int | None = None, seed: int = 0,
            device: str = "auto", variants: list[str] | None = None, model: str | None = None,
            overwrite: bool = False) -> list[dict]:
    from ..core.files import prepare_output
    from ..models.devices import resolve_device
    from .predict import predict_bank
    from .slice_bank import build_slice_bank

    dataset = load_dataset(data)
    out = prepare_output(Path(out), overwrite, names=("comparison.json", "comparison.md"))
    base_cfg = comparison_base(base, epochs)
    labels = comparison_labels(variants)
    dev = resolve_device(device)
    bank = build_slice_bank(dataset, base_cfg.input, with_crops=True, crop_margin=base_cfg.crop_margin_px)
    classes = list(dataset.classes)
    rows = []
    if model:
        from ..staging.inference import Stager

        stager = Stager(model, device)
        row = {"method": f"bundled: {stager.entry.id}", "config": stager.cfg.name}
        for split in ("val", "test"):
            mbank = build_slice_bank(dataset, stager.cfg.input).split(split)
            _, probs = predict_bank(stager.model, mbank, stager.device)
            m = staging_metrics(mbank.roi_labels(), probs, classes)
            row[split] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        rows.append(row)
    header = {"schema": "dvt-staging/comparison@1", "dataset": str(Path(data).resolve()), "seed": seed}
    return compare_on_bank(bank, base_cfg, labels, classes, seed, dev, out, header, rows)


def comparison_base(base: str, epochs: int | None) -> ModelConfig:
    cfg = load_config(base)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs, warmup_epochs=min(cfg.warmup_epochs, max(1, epochs // 5)),
                      patience=max(epochs, 1))
    return cfg


def comparison_labels(variants: list[str] | None) -> list[str]:
    labels = variants or list(ABLATIONS) + list(BASELINES)
    unknown = [v for v in labels if v not in ABLATIONS and v not in BASELINES]
    if unknown:
        raise UserError(f"unknown variants: {', '.join(unknown)} (known: {', '.join(list(ABLATIONS) + list(BASELINES))})")
    return labels


def compare_on_bank(bank, base_cfg: ModelConfig, labels, classes, seed: int, dev, out: Path, header: dict,
                    rows: list[dict] | None = None) -> list[dict]:
    """Train each variant on the bank's train split (selected on val) and score it on val and test."""
    from .predict import predict_bank
    from .train import train_model

    rows = list(rows or [])
    parts = {name: bank.split(name) for name in ("train", "val", "test")}
    val_select = parts["val"].thinned(16)
    for label in labels:
        cfg: ModelConfig = variant(base_cfg, label)
        started = time.perf_counter()
        status(f"compare: training {label} ({cfg.architecture}, {cfg.epochs} epochs)")
        net, record = train_model(cfg, parts["train"], val_select, None, seed, dev, log_name=f"compare {label}")
        row = {"method": label, "config": cfg.name, "best_epoch": record["best_epoch"],
               "train_seconds": round(time.perf_counter() - started, 1)}
        for split in ("val", "test"):
            _, probs = predict_bank(net, parts[split], dev)
            m = staging_metrics(parts[split].roi_labels(), probs, classes)
            row[split] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        rows.append(row)
        write_json_atomic(out / "comparison.json", dict(header, base=base_cfg.to_dict(), rows=rows))
    table = comparison_table(rows)
    (out / "comparison.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return rows


def comparison_table(rows: list[dict]) -> str:
    lines = ["| Method | Val ACC (%) | Val F1 (%) | Test ACC (%) | Test F1 (%) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {100 * r['val']['accuracy']:.1f} | {100 * r['val']['macro_f1']:.1f} | "
                     f"{100 * r['test']['accuracy']:.1f} | {100 * r['test']['macro_f1']:.1f} |")
    return "\n".join(lines)
