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


def evaluate_model(data: Path, model: str | None, out: Path, split: str = "test", device: str = "auto",
                   overwrite: bool = False) -> dict:
    from ..core.files import prepare_output
    from ..staging.inference import Stager
    from .predict import predict_bank
    from .slice_bank import build_slice_bank

    dataset = load_dataset(data)
    out = prepare_output(Path(out), overwrite, names=("metrics.json", "confusion.png"))
    stager = Stager(model, device)
    bank = build_slice_bank(dataset, stager.cfg.input, with_crops=stager.cfg.architecture != "vdpf",
                            crop_margin=stager.cfg.crop_margin_px).split(split)
    if not bank.rois:
        raise UserError(f"{data}: the '{split}' split has no labeled ROI")
    _, probs = predict_bank(stager.model, bank, stager.device)
    staging = staging_metrics(bank.roi_labels(), probs, list(dataset.classes))
    staging["unit"] = "thrombus ROI (mean of its slice probabilities)"
    staging["predictions"] = [{"case": r["case"], "roi": r["roi"], "truth": r["stage"],
                               "probabilities": dict(zip(dataset.classes, map(float, p)))}
                              for r, p in zip(bank.rois, probs)]
    metrics = {
        "schema": METRICS_SCHEMA,
        "dataset": dataset.provenance(),   # what was scored, not where it lay on this machine
        "split": split,
        "model": {"id": stager.entry.id, "sha256": stager.entry.card["sha256"], "config": stager.cfg.name},
        "staging": staging,
    }
    detection = _detection_section(dataset, split, device, out, stager, staging)
    if detection is not None:
        metrics["detection"] = detection
    write_json_atomic(out / "metrics.json", metrics)
    confusion_png(out / "confusion.png", staging, f"{stager.entry.id} on {split}")
    status(f"evaluate: {split} macro F1 {staging['macro_f1']:.3f}, accuracy {staging['accuracy']:.3f} "
           f"(n={staging['n']} ROIs); wrote {out / 'metrics.json'}")
    return metrics


def _detection_section(dataset, split, device, out, stager, staging) -> dict | None:
    """Detector metrics and staging with detected ROIs, when a detector is installed."""
    try:
        from ..detection.evaluation import evaluate_detection
        from ..models.catalog import list_models
    except ImportError:
        return None
    if not list_models("detector"):
        return None
    cases = dataset.split(split)
    found = evaluate_detection(dataset, cases, device=device, out_dir=out)
    section = dict(found["metrics"])
    section["staging_macro_f1_true_rois"] = staging["macro_f1"]
    section["staging_macro_f1_detected_rois"] = _staging_with_detected_rois(dataset, cases, found["rois"], stager)
    return section


def _staging_with_detected_rois(dataset, cases, detected: dict, stager) -> float:
    """Macro F1 when each true thrombus is staged from the detected ROI that overlaps it most.

    A thrombus that no detected ROI overlaps counts as an error.
    """
    from ..io.roi import read_rois
    from ..io.volume import read_volume

    classes = list(dataset.classes)
    truths, probs = [], []
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
                    probs.append(staged[int(np.argmax(overlaps))].probabilities)
                else:
                    miss = np.full(len(classes), 0.0)
                    miss[(classes.index(stage) + 1) % len(classes)] = 1.0
                    probs.append(miss)
    return staging_metrics(truths, probs, classes)["macro_f1"]


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
