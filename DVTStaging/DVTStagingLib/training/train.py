"""`dvt-staging train`: the paper's recipe on a dataset of labeled cases, on one process or under torchrun (DDP).

Adam (lr 1e-4, weight decay 1e-6), linear warm-up then cosine decay, class-weighted
cross-entropy (the stages are imbalanced), the paper's augmentations, early stopping
on validation macro F1 of per-ROI predictions.  Each epoch draws up to
`slices_per_roi` slices of every training ROI, so long thrombi don't dominate.
Rank 0 writes checkpoints, logs and the final model; `--resume` continues a run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import __version__
from ..core.errors import UserError
from ..core.progress import Progress, status
from ..core.stages import STAGES
from ..io.dataset import load_dataset
from ..models.build import build_model
from ..models.catalog import NOT_FOR_CLINICAL_USE, parent_record, save_model, user_dir
from ..models.config import ModelConfig
from ..models.devices import resolve_device
from ..phantom.styles import refuse_held_out_style
from .augment import augment_batch
from .calibration import (
    fit_trust,
    trust_tensors,
    trusted_split_metrics,
)
from .finetune import ENCODER_LR_SCALE, finetune_config, parent_staging
from .metrics import staging_metrics
from .predict import model_inputs, predict_bank
from .slice_bank import SliceBank, build_slice_bank

CHECKPOINT = "checkpoint.pt"
VAL_SLICES_PER_ROI = 16


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def broadcast_flag(self, value: bool) -> bool:
        if self.world == 1:
            return value
        t = torch.tensor([int(value)])
        dist.broadcast(t, 0)
        return bool(t.item())

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def epoch_slices(bank: SliceBank, per_roi: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `per_roi` random slices of each ROI, shuffled."""
    picks = []
    order = np.argsort(bank.roi_of_slice, kind="stable")
    starts = np.searchsorted(bank.roi_of_slice[order], np.arange(len(bank.rois) + 1))
    for r in range(len(bank.rois)):
        idx = order[starts[r]: starts[r + 1]]
        if len(idx):
            picks.append(rng.choice(idx, size=min(per_roi, len(idx)), replace=False))
    chosen = np.concatenate(picks)
    rng.shuffle(chosen)
    return chosen


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _batch(model, bank: SliceBank, index, gen: torch.Generator, device):
    g, m, c, z = bank.tensors(np.sort(index))
    keep = model.cfg.augmentation == "ratio-preserving"
    g, m = augment_batch(g, m, gen, keep)
    if c is not None:
        c, _ = augment_batch(c, torch.ones_like(c), gen, keep)
    if z is not None:
        z, _ = augment_batch(z, torch.ones_like(z), gen, keep)
    return [t.to(device) for t in model_inputs(model, g, m, c, z)]


def _parameter_groups(model, encoder_lr_scale: float) -> list[dict]:
    """The optimizer's parameter groups, each with its share of the learning rate (`lr_scale`)."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or encoder_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    encoder = {id(p) for p in backbone.parameters()}
    return [{"params": list(backbone.parameters()), "lr_scale": encoder_lr_scale},
            {"params": [p for p in model.parameters() if id(p) not in encoder], "lr_scale": 1.0}]


def _save_checkpoint(path: Path, model, optimizer, state: dict):
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "state": {k: v for k, v in state.items() if k != "best_state"},
                "best_state": state.get("best_state") or {}}, tmp)
    os.replace(tmp, path)


def train_model(cfg: ModelConfig, train_bank: SliceBank, val_bank: SliceBank, out: Path | None, seed: int,
                device: torch.device, dist_env: Distributed | None = None, resume: bool = False,
                log_name: str = "train", time_limit_s: float | None = None,
                bf16: bool = False, init_state: dict | None = None,
                encoder_lr_scale: float = 1.0) -> tuple[torch.nn.Module, dict]:
    """Train one network; returns it with the best validation weights loaded, and the run's record.

    `time_limit_s` (a cluster's wall-time, say) ends the run early, with the best weights so far, when
    the next epoch would not finish inside it; the record then says so.  `bf16` runs forward and loss under
    bf16 autocast on a GPU (weights, optimizer and validation stay float32).  `init_state`: start from these
    weights (fine-tuning, training.finetune); `encoder_lr_scale`: the shared ViT encoder then learns at this
    fraction of the learning rate (layer-wise rates: the fusion module and head adapt, the features move less).
    """
    run_started = time.perf_counter()
    dist_env = dist_env or Distributed(device)
    torch.manual_seed(seed)
    model = build_model(cfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    net = model
    if dist_env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(_parameter_groups(model, encoder_lr_scale), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = class_weights(train_bank.roi_labels(), cfg.num_classes).to(device)
    slice_labels = torch.from_numpy(train_bank.roi_labels()[train_bank.roi_of_slice])
    per_epoch = sum(min(cfg.slices_per_roi, int(n)) for n in np.bincount(train_bank.roi_of_slice))
    steps_per_epoch = max(1, math.ceil(per_epoch / (cfg.batch_size * dist_env.world)))
    total_steps, warmup_steps = cfg.epochs * steps_per_epoch, max(1, cfg.warmup_epochs * steps_per_epoch)
    state = {"epoch": 0, "step": 0, "best_f1": -1.0, "best_epoch": -1, "bad_epochs": 0, "history": []}
    ckpt = out / CHECKPOINT if out is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)   # our own tensors and numbers only
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update(saved["state"])
        state["best_state"] = saved["best_state"] or None
        if dist_env.main:
            status(f"{log_name}: resumed at epoch {state['epoch']} (best macro F1 {state['best_f1']:.3f})")
    progress = Progress(log_name, cfg.epochs, enabled=dist_env.main)
    progress.update(state["epoch"], force=True)
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        rng = np.random.default_rng([seed, epoch])
        gen = torch.Generator().manual_seed(seed * 100003 + epoch * 101 + dist_env.rank)
        chosen = epoch_slices(train_bank, cfg.slices_per_roi, rng)[dist_env.rank:: dist_env.world]
        net.train()
        started, losses = time.perf_counter(), []
        for b in range(steps_per_epoch):
            index = chosen[b * cfg.batch_size: (b + 1) * cfg.batch_size]
            if len(index) == 0:     # ranks hold equal step counts, so DDP's all-reduce stays in step
                index = chosen[: cfg.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * group["lr_scale"] * lr_factor(state["step"], warmup_steps, total_steps)
            inputs = _batch(model, train_bank, index, gen, device)
            target = slice_labels[np.sort(index)].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
                loss = F.cross_entropy(net(*inputs).float(), target, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            state["step"] += 1
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started,
                  "lr": optimizer.param_groups[0]["lr"]}
        stop = False
        if dist_env.main:
            _, roi_probs = predict_bank(model, val_bank, device)
            val = staging_metrics(val_bank.roi_labels(), roi_probs, list(STAGES[: cfg.num_classes]))
            record.update(val_macro_f1=val["macro_f1"], val_accuracy=val["accuracy"])
            if val["macro_f1"] > state["best_f1"]:
                state.update(best_f1=val["macro_f1"], best_epoch=epoch + 1, bad_epochs=0,
                             best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            else:
                state["bad_epochs"] += 1
            stop = state["bad_epochs"] >= cfg.patience and epoch + 1 >= cfg.warmup_epochs
            elapsed = time.perf_counter() - run_started
            if time_limit_s is not None and not stop and epoch + 1 < cfg.epochs \
                    and elapsed + record["seconds"] * 1.2 > time_limit_s:
                state["stopped_by_time_limit"] = True
                stop = True
            state["history"].append(record)
            if out is not None:
                with open(out / f"{log_name}.log.jsonl", "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            status(f"{log_name}: epoch {epoch + 1}/{cfg.epochs} loss {record['loss']:.3f} "
                   f"val macro F1 {val['macro_f1']:.3f} acc {val['accuracy']:.3f} ({record['seconds']:.0f} s)")
        state["epoch"] = epoch + 1
        if dist_env.main and ckpt is not None:
            _save_checkpoint(ckpt, model, optimizer, state)
        progress.update(state["epoch"])
        if dist_env.broadcast_flag(stop):
            if dist_env.main:
                why = "time limit" if state.get("stopped_by_time_limit") else "early stop"
                status(f"{log_name}: {why} after {epoch + 1} epochs; best epoch {state['best_epoch']}")
            break
    dist_env.barrier()
    if state.get("best_state"):
        model.load_state_dict(state["best_state"])
    return model, {k: v for k, v in state.items() if k != "best_state"}


def model_card(cfg: ModelConfig, training_data: dict, record: dict, metrics: dict, seed: int) -> dict:
    return {
        "kind": "staging",
        "version": __version__,
        "name": f"VDPF ({cfg.name})",
        "config": cfg.to_dict(),
        "classes": list(STAGES[: cfg.num_classes]),
        "input": cfg.input.to_dict(),
        "training_data": dict(training_data, seed=seed),
        "training": {"best_epoch": record["best_epoch"], "epochs_run": record["epoch"], "epochs_planned": cfg.epochs,
                     "best_val_macro_f1": record["best_f1"], "torch": torch.__version__,
                     "precision": record.get("precision", "float32"),
                     **({"stopped_by": "time limit"} if record.get("stopped_by_time_limit") else {})},
        "metrics": metrics,
        "intended_use": NOT_FOR_CLINICAL_USE,
    }


def _prepare_run_folder(out: Path, resume: bool, dist_env: Distributed):
    if dist_env.main:
        if not resume and (out / CHECKPOINT).exists():
            raise UserError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
        out.mkdir(parents=True, exist_ok=True)


def run_training(data: Path, config: ModelConfig | None, out: Path, seed: int = 0, device: str = "auto",
                 resume: bool = False, model_id: str | None = None, publish: bool = True,
                 epochs: int | None = None, time_limit_s: float | None = None, bf16: bool = False,
                 init: str | None = None) -> dict | None:
    """`init`: fine-tune this catalogued model (its network config; training.finetune's recipe) instead of
    training `config` from scratch."""
    dev = resolve_device(device)
    dist_env = Distributed(dev)
    parent = None
    if init is not None:
        parent = parent_staging(init)
        config = finetune_config(parent[1], epochs)
        epochs = None
    try:
        dataset = load_dataset(data)
        if parent is None:
            refuse_held_out_style(dataset, "train")
        _prepare_run_folder(Path(out), resume, dist_env)     # before the slices: a wrong --out fails at once
        if dist_env.world > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 2) // dist_env.world))
        # Rank 0 builds (and caches) the slices first; the others then read the cache.
        if dist_env.main:
            bank = build_slice_bank(dataset, config.input, with_crops=config.architecture != "vdpf",
                                    crop_margin=config.crop_margin_px)
        dist_env.barrier()
        if not dist_env.main:
            bank = build_slice_bank(dataset, config.input, with_crops=config.architecture != "vdpf",
                                    crop_margin=config.crop_margin_px, workers=1)
        return train_on_bank(bank, config, Path(out), dataset.provenance(), list(dataset.classes), seed, dev,
                             dist_env, resume=resume, model_id=model_id, publish=publish, epochs=epochs,
                             time_limit_s=time_limit_s, data_name=str(data), bf16=bf16, parent=parent)
    finally:
        dist_env.close()


def train_on_bank(bank: SliceBank, config: ModelConfig, out: Path, provenance: dict, classes: list[str], seed: int,
                  dev: torch.device, dist_env: Distributed, resume: bool = False, model_id: str | None = None,
                  publish: bool = True, epochs: int | None = None, time_limit_s: float | None = None,
                  data_name: str = "the dataset", bf16: bool = False, parent: tuple | None = None,
                  save: bool = True) -> dict | None:
    """Train on a bank's train split (selected on val), fit the trust figures, score val and test, and save
    the model with its card in `out` (and the user catalogue when publishing).  Returns the card (rank 0).

    `parent`: (entry, config, weights) of a catalogued model to fine-tune (training.finetune.parent_staging).
    `save=False`: return the card with the weights under "_weights" and write nothing (the caller saves)."""
    if epochs is not None:
        config = replace(config, epochs=epochs, warmup_epochs=min(config.warmup_epochs, max(1, epochs // 5)))
    if out is not None:
        _prepare_run_folder(out, resume, dist_env)
    train_bank, val_bank, test_bank = bank.split("train"), bank.split("val"), bank.split("test")
    # Model selection looks at evenly spaced slices of each validation ROI; final metrics use them all.
    val_select = val_bank.thinned(VAL_SLICES_PER_ROI)
    if not train_bank.rois or not val_bank.rois:
        raise UserError(f"{data_name}: training needs ROIs in both the 'train' and the 'val' split")
    if parent is not None:
        status(f"train: fine-tuning '{parent[0].id}' ({len(train_bank.rois)} training ROIs; lr {config.lr:g}, "
               f"encoder at {ENCODER_LR_SCALE:g} of it, up to {config.epochs} epochs)")
    model, record = train_model(config, train_bank, val_select, out, seed, dev, dist_env, resume,
                                time_limit_s=time_limit_s, bf16=bf16,
                                init_state=None if parent is None else parent[2],
                                encoder_lr_scale=1.0 if parent is None else ENCODER_LR_SCALE)
    record["precision"] = "bf16 autocast" if bf16 and dev.type == "cuda" else "float32"
    if not dist_env.main:
        return None
    trust, _ = fit_trust(model, train_bank, val_bank, dev)
    metrics = {}
    for name, part in (("val", val_bank), ("test", test_bank)):
        if part.rois:
            metrics[name] = trusted_split_metrics(model, trust, part, dev, classes)
    base = f"{parent[0].id}-finetuned" if parent is not None else config.name
    model_id = model_id or f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
    card = model_card(config, provenance, record, metrics, seed)
    card["trust"] = trust.card_section()
    if parent is not None:
        card["parent"] = parent_record(parent[0])
        card["training"]["recipe"] = (f"fine-tuned from '{parent[0].id}': lr {config.lr:g} "
                                      f"(encoder x{ENCODER_LR_SCALE:g}), early stopping on val macro F1 "
                                      f"(patience {config.patience})")
    weights = {**model.state_dict(), **trust_tensors(trust)}
    if not save:
        return {**card, "_weights": weights}
    entry = save_model(weights, card, out, model_id)
    if publish:
        save_model(weights, card, user_dir(), model_id)
        status(f"train: model '{model_id}' added to the catalogue ({user_dir()})")
    for name, m in metrics.items():
        status(f"train: {name} macro F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f}, "
               f"indeterminate {m['indeterminate_rate']:.0%} (n={m['n']} ROIs)")
    status(f"train: model card {entry.card_path}")
    return card
