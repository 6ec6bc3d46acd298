"""`dvt-staging adapt`: both models fine-tuned on a site's own labeled studies, in one command.

1. The site's dataset is checked (labeled ROIs of at least two stages) and its `unassigned` cases are split
   train/val/test by patient, stratified by stage, in memory: the site's dataset.json is not rewritten.
2. The staging model is fine-tuned from the bundled one (training.finetune) and its temperature, confidence
   threshold and OOD statistics are re-fitted on the site's train and val splits.
3. The detector is fine-tuned from the bundled one; cases with ROI boxes but no thrombus mask learn from box
   pseudo-masks (detection.box_targets).
4. The parent pair and the adapted pair are scored on the site's test split (the before/after table).
5. OUT/staging.json and OUT/detector.json (cards, safetensors beside them, provenance: the parents' ids and
   sha256, the dataset's provenance without machine paths) are written, and both are added to the user
   catalogue.  Nothing is written under those names before the end: Ctrl-C or SIGTERM leave no model.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..core.errors import UserError
from ..core.files import write_json_atomic
from ..core.interrupts import sigterm_cancels
from ..core.progress import status
from ..io.dataset import Dataset, load_dataset

STAGING_FILE, DETECTOR_FILE = "staging", "detector"     # OUT/<name>.json and OUT/<name>.safetensors
REPORT_FILE = "adapt-report.json"
PARTIAL = ".adapt-partial"
SCORES = ("scores-before", "scores-after")   # evaluate's outputs for the parent and the adapted pair
OUTPUTS = (f"{STAGING_FILE}.json", f"{STAGING_FILE}.safetensors", f"{DETECTOR_FILE}.json",
           f"{DETECTOR_FILE}.safetensors", REPORT_FILE)


def check_site_dataset(dataset: Dataset, where) -> dict:
    """Labeled ROIs per stage; UserError (one line) for a dataset `adapt` cannot learn from."""
    if not dataset.cases:
        raise UserError(f"{where}: the dataset has no cases")
    counts: dict[str, int] = {}
    for case in dataset.cases:
        for label in case.labels:
            stage = label.get("stage")
            if stage in dataset.classes:
                counts[stage] = counts.get(stage, 0) + 1
    if not counts:
        raise UserError(f"{where}: no ROI has a stage label; adapt learns from labeled studies "
                        "(set the true stage in the worklist, then export)")
    if len(counts) < 2:
        raise UserError(f"{where}: every labeled ROI is '{next(iter(counts))}'; adapt needs at least two stages")
    return counts


def site_splits(dataset: Dataset, seed: int) -> Dataset:
    """The dataset with its `unassigned` cases split train/val/test by patient, stratified by stage (in memory)."""
    from .dataset_tools import assign_splits

    todo = [c for c in dataset.cases if c.split == "unassigned"]
    assigned = assign_splits(todo, seed=seed) if todo else {}
    cases = [replace(c, split=assigned.get(c.id, c.split)) for c in dataset.cases]
    site = replace(dataset, cases=cases)
    counts = {s: len(site.split(s)) for s in ("train", "val", "test")}
    if not counts["train"] or not counts["val"]:
        raise UserError(f"{dataset.root}: too few labeled studies to split into train and val "
                        f"({counts['train']} and {counts['val']}); adapt needs a few studies of each stage")
    return site


def reliability_warning(fit: dict) -> str | None:
    """A line for the researcher when the adapted staging model misses the answered-error target on the site's
    validation split: its confidence threshold then only caps abstention (training.calibration), and many of its
    answers will be wrong with confidence."""
    error, target = fit.get("val_answered_error_rate"), fit.get("target_risk")
    if fit.get("rule") != "coverage cap" or error is None or target is None or error <= target:
        return None
    return (f"on the site's validation split ({fit.get('val_rois')} ROIs) the adapted staging model's answers are "
            f"wrong {error:.0%} of the time (target {target:.0%}); do not use it before it is better: label more "
            "studies of this site and adapt again")


def _scores(site: Dataset, staging_card, detector_card, device: str, out: Path) -> dict:
    """The before/after row: a staging model and a detector scored on the site's test split."""
    from ..training.evaluate import evaluate_model

    metrics = evaluate_model(site, str(staging_card), out, split="test", device=device, overwrite=True,
                             detector=str(detector_card), explain=False)
    staging = metrics["staging"]
    detection = metrics.get("detection") or {}
    return {"rois": staging["n"], "macro_f1_true_rois": staging["macro_f1"],
            "macro_f1_detected_rois": detection.get("staging_macro_f1_detected_rois"),
            "indeterminate_rate": staging["indeterminate_rate"],
            "confidently_wrong_rate": staging["confidently_wrong_rate"],
            "detector_recall": detection.get("recall_3d"),
            "false_rois_per_study": detection.get("false_rois_per_study"),
            "model": metrics["model"]["id"], "detector": (detection.get("model") or {}).get("id")}


ROWS = (("macro F1, true ROIs", "macro_f1_true_rois", "{:.3f}"),
        ("macro F1, detected ROIs", "macro_f1_detected_rois", "{:.3f}"),
        ("indeterminate rate", "indeterminate_rate", "{:.1%}"),
        ("confidently wrong", "confidently_wrong_rate", "{:.1%}"),
        ("detector recall (3D)", "detector_recall", "{:.3f}"),
        ("false ROIs per study", "false_rois_per_study", "{:.2f}"))


def before_after_table(before: dict, after: dict, n_studies: int) -> str:
    def cell(fmt, value):
        return "n/a" if value is None else fmt.format(value)

    lines = [f"site test split: {n_studies} studies, {after['rois']} labeled ROIs",
             f"{'':<26}{'bundled':>10}{'adapted':>10}"]
    lines += [f"{label:<26}{cell(fmt, before[key]):>10}{cell(fmt, after[key]):>10}" for label, key, fmt in ROWS]
    return "\n".join(lines)


def _save_pair(folder: Path, staging_card: dict, detector_card: dict, staging_id: str, detector_id: str):
    from ..models.catalog import save_model

    s = save_model(staging_card.pop("_weights"), staging_card, folder, staging_id, stem=STAGING_FILE)
    d = save_model(detector_card.pop("_weights"), detector_card, folder, detector_id, stem=DETECTOR_FILE)
    return s, d


def adapt(data, out, device: str = "auto", init_staging: str | None = None, init_detector: str | None = None,
          seed: int = 0, overwrite: bool = False, staging_epochs: int | None = None,
          detector_epochs: int | None = None, detector_steps: int | None = None, publish: bool = True) -> dict:
    started = time.perf_counter()
    dataset = load_dataset(data)
    counts = check_site_dataset(dataset, data)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    existing = [n for n in (*OUTPUTS, *SCORES) if (out / n).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    site = site_splits(dataset, seed)
    split_counts = {s: len(site.split(s)) for s in ("train", "val", "test")}
    status(f"adapt: {len(site.cases)} studies ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))} ROIs); "
           f"split by patient: {', '.join(f'{n} {s}' for s, n in split_counts.items())}")

    import torch  # noqa: F401  (the model libraries load only once the inputs are known to be usable)

    from ..detection.commands import load_detector_studies
    from ..detection.detector import load_detector
    from ..detection.training import finetune_config as detector_finetune_config
    from ..detection.training import train_and_save
    from ..models import catalog
    from ..models.devices import resolve_device
    from ..training.finetune import finetune_config, parent_staging
    from ..training.slice_bank import build_slice_bank
    from ..training.train import Distributed, train_on_bank

    dev = resolve_device(device)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    site_name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset.root).resolve().name).strip("-.") or "site"
    staging_id, detector_id = f"{site_name}-staging-{stamp}", f"{site_name}-detector-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with sigterm_cancels():
            timings = {}
            t = time.perf_counter()
            staging_parent = parent_staging(init_staging)
            cfg = finetune_config(staging_parent[1], staging_epochs)
            status(f"adapt: staging model: fine-tuning '{staging_parent[0].id}' on the site's train split")
            bank = build_slice_bank(site, cfg.input, with_crops=cfg.architecture != "vdpf",
                                    crop_margin=cfg.crop_margin_px)
            staging_card = train_on_bank(bank, cfg, None, site.provenance(), list(site.classes), seed, dev,
                                         Distributed(dev), publish=False, model_id=staging_id,
                                         data_name=str(data), parent=staging_parent, save=False)
            timings["staging_s"] = round(time.perf_counter() - t, 1)
            unreliable = reliability_warning(staging_card.get("trust", {}).get("fit", {}))
            if unreliable:
                status(f"adapt: warning: {unreliable}")

            t = time.perf_counter()
            detector_parent = catalog.resolve(init_detector, "detector")
            box_parent = load_detector(detector_parent.card_path, device)
            status(f"adapt: detector: fine-tuning '{detector_parent.id}' (box pseudo-masks where a study has no "
                   "thrombus mask)")
            splits = {name: site.split(name) for name in ("train", "val", "test")}
            prepared = load_detector_studies(site, splits, box_parent.spec, box_parent)
            det_config = detector_finetune_config(detector_parent, seed, detector_epochs, detector_steps)
            detector_card, _ = train_and_save(prepared["train"], prepared["val"], prepared["test"], box_parent.spec,
                                              det_config, dev, partial, detector_id, site.provenance(),
                                              parent=detector_parent, save=False)
            del prepared
            timings["detector_s"] = round(time.perf_counter() - t, 1)

            staged, detected = _save_pair(partial, staging_card, detector_card, staging_id, detector_id)
            t = time.perf_counter()
            report = {"site": site.provenance(), "splits": split_counts, "seed": seed, "device": str(dev),
                      "warning": unreliable,
                      "case_splits": {c.id: c.split for c in site.cases},
                      "parents": {"staging": staged.card["parent"], "detector": detected.card["parent"]},
                      "models": {"staging": {"id": staging_id, "sha256": staged.card["sha256"]},
                                 "detector": {"id": detector_id, "sha256": detected.card["sha256"]}}}
            if site.split("test"):
                status("adapt: scoring the bundled and the adapted models on the site's test split")
                report["before"] = _scores(site, staging_parent[0].card_path, detector_parent.card_path, device,
                                           partial / SCORES[0])
                report["after"] = _scores(site, staged.card_path, detected.card_path, device, partial / SCORES[1])
            timings["scoring_s"] = round(time.perf_counter() - t, 1)
            timings["total_s"] = round(time.perf_counter() - started, 1)
            report["timings"] = timings
            write_json_atomic(partial / REPORT_FILE, report)
            for name in OUTPUTS:        # each move is atomic; the cards name their weights files beside them
                os.replace(partial / name, out / name)
            for folder in SCORES:
                if (partial / folder).is_dir():
                    shutil.rmtree(out / folder, ignore_errors=True)
                    os.replace(partial / folder, out / folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if publish:
        for stem, model_id in ((STAGING_FILE, staging_id), (DETECTOR_FILE, detector_id)):
            catalog.register_copy(out / f"{stem}.json", model_id)
        status(f"adapt: '{staging_id}' and '{detector_id}' added to the catalogue ({catalog.user_dir()})")
    if "after" in report:
        table = before_after_table(report["before"], report["after"], split_counts["test"])
        for line in table.splitlines():
            status(f"adapt: {line}")
    else:
        status("adapt: the site has no test split; no before/after table")
    if report.get("warning"):
        status(f"adapt: warning: {report['warning']}")
    status(f"adapt: wrote {out / (STAGING_FILE + '.json')} and {out / (DETECTOR_FILE + '.json')} "
           f"in {timings['total_s'] / 60:.1f} min")
    return report
