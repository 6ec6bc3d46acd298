"""Train the thrombus detector: 2.5D slice crops, BCE + Dice, model selection on the validation split.

Half of every batch are slices that show thrombus (cropped around it), half
are slices drawn at random, so the network sees the many thrombus-free
slices and the other leg as well.  After each epoch the whole detector
(network, linking, ROI threshold) runs on the validation studies; the epoch
with the best 3D recall at the allowed false ROIs per study is kept, and
its ROI threshold goes into the model card.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..core.progress import Progress, status
from .detector import Detector, PostProcess
from .evaluation import analyse_study, choose_roi_threshold, detection_metrics
from .network import DEFAULT_CONFIG, build_network
from .studies import PreparedStudy
from .view import DetectorInput


@dataclass
class TrainingConfig:
    epochs: int = 30
    steps_per_epoch: int = 200
    batch: int = 16
    crop: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    positive_fraction: float = 0.5
    seed: int = 0
    max_false_per_study: float = 0.25     # on validation, when the ROI threshold is chosen
    network: dict = field(default_factory=lambda: dict(DEFAULT_CONFIG))


class SliceSampler:
    """Random 2.5D crops with their targets, from prepared studies held on the training device."""

    def __init__(self, studies: list[PreparedStudy], crop: int, positive_fraction: float, seed: int,
                 device: torch.device):
        self.crop = crop
        self.positive_fraction = positive_fraction
        self.rng = np.random.default_rng(seed)
        self.device = device
        self.planes = [s.view.planes.to(device) for s in studies]
        self.targets = [s.target.to(device) for s in studies]
        self.n_slices = [s.view.n_slices for s in studies]
        self.small = [s.view.small_shape for s in studies]
        self.positives = [(n, int(k)) for n, s in enumerate(studies) for k in s.positive_slices]
        if not self.positives:
            raise UserError("no training study shows thrombus: the detector has nothing to learn from")

    def _crop_origin(self, n: int, k: int, positive: bool) -> tuple[int, int]:
        h, w = self.small[n]
        if positive:
            ys, xs = torch.nonzero(self.targets[n][k, :h, :w] >= 0.25, as_tuple=True)
            pick = int(self.rng.integers(len(ys)))
            cy, cx = int(ys[pick]), int(xs[pick])
            cy += int(self.rng.integers(-self.crop // 3, self.crop // 3 + 1))
            cx += int(self.rng.integers(-self.crop // 3, self.crop // 3 + 1))
        else:
            cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        return cy - self.crop // 2, cx - self.crop // 2

    def _window(self, image: torch.Tensor, y0: int, x0: int) -> torch.Tensor:
        """[..., H, W] -> [..., crop, crop] at (y0, x0), zero outside the image."""
        c = self.crop
        h, w = image.shape[-2:]
        out = image.new_zeros((*image.shape[:-2], c, c))
        ys, ye = max(y0, 0), min(y0 + c, h)
        xs, xe = max(x0, 0), min(x0 + c, w)
        if ye > ys and xe > xs:
            out[..., ys - y0: ye - y0, xs - x0: xe - x0] = image[..., ys:ye, xs:xe]
        return out

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(size):
            positive = self.rng.random() < self.positive_fraction
            if positive:
                n, k = self.positives[int(self.rng.integers(len(self.positives)))]
            else:
                n = int(self.rng.integers(len(self.planes)))
                k = int(self.rng.integers(self.n_slices[n]))
            y0, x0 = self._crop_origin(n, k, positive and bool((self.targets[n][k] >= 0.25).any()))
            below, above = max(k - 1, 0), min(k + 1, self.n_slices[n] - 1)
            stack = self.planes[n][[below, k, above]]
            xs.append(self._window(stack, y0, x0))
            ys.append(self._window(self.targets[n][k], y0, x0))
        return torch.stack(xs).float(), torch.stack(ys).float()


def augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-right flips, reversed slice order, gain, gamma and noise: none of them change what thrombus is."""
    n = x.shape[0]
    dev = x.device

    def uniform(lo, hi, shape=(n, 1, 1, 1)):
        return lo + (hi - lo) * torch.rand(shape, generator=generator, device="cpu").to(dev)

    flip = uniform(0, 1, (n,)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    reverse = uniform(0, 1, (n,)) < 0.5
    x = torch.where(reverse[:, None, None, None], x.flip(1), x)
    x = x.clamp(min=0) ** uniform(0.75, 1.35)
    x = x * uniform(0.8, 1.2)
    x = x + torch.randn(x.shape, generator=generator, device="cpu").to(dev) * uniform(0.0, 0.06)
    return x, y


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def _validate(network, studies, spec, post, device, max_false: float) -> tuple[list, float]:
    network.eval()
    detector = Detector(network, spec, post, device)
    outcomes = [analyse_study(detector, s, batch=64, per_slice=False) for s in studies]
    network.train()
    return outcomes, choose_roi_threshold(outcomes, max_false)


@dataclass
class TrainedDetector:
    state_dict: dict
    spec: DetectorInput
    post: PostProcess
    config: TrainingConfig
    history: list[dict]
    val_metrics: dict
    seconds: float


def train_detector(train: list[PreparedStudy], val: list[PreparedStudy], spec: DetectorInput,
                   config: TrainingConfig, device: torch.device, post: PostProcess | None = None,
                   progress: bool = True, init_state: dict | None = None) -> TrainedDetector:
    """`init_state`: start from these weights (a catalogued detector's) instead of at random."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    post = post or PostProcess()
    network = build_network(config.network)
    if init_state is not None:
        network.load_state_dict(init_state)
    network = network.to(device)
    sampler = SliceSampler(train, config.crop, config.positive_fraction, config.seed, device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * config.steps_per_epoch

    def lr_at(step):
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return 0.5 * (1 + np.cos(np.pi * (step - config.warmup_steps) / max(total - config.warmup_steps, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    use_bf16 = device.type == "cuda"
    history, best = [], None

    def consider(epoch: int, losses: list) -> None:
        """Validate the network as it is now; keep it when it is the best so far."""
        nonlocal best
        outcomes, threshold = _validate(network, val, spec, post, device, config.max_false_per_study)
        metrics = detection_metrics(outcomes, threshold)
        record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else None, "roi_threshold": threshold,
                  "val_recall_3d": metrics["recall_3d"], "val_false_rois_per_study": metrics["false_rois_per_study"],
                  "val_mean_iou_3d": metrics["mean_iou_3d"],
                  "seconds": round(time.perf_counter() - start, 1)}
        # Selection: 3D recall within the false-ROI budget first, then fewer false ROIs, then better boxes.
        key = ((metrics["recall_3d"] or 0.0), -metrics["false_rois_per_study"], (metrics["mean_iou_3d"] or 0.0))
        record["selected"] = best is None or key > best[0]
        if record["selected"]:
            best = (key, copy.deepcopy({k: v.detach().cpu() for k, v in network.state_dict().items()}),
                    threshold, metrics)
        history.append(record)
        if progress:
            status("train-detector: " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in record.items()))

    if init_state is not None:
        # Epoch 0 is the parent itself (its ROI threshold re-chosen on this validation split): fine-tuning is
        # kept only where it beats the model it started from.
        consider(0, [])
    bar = Progress("train-detector", total, enabled=progress, min_interval=5.0)
    network.train()
    step = 0
    for epoch in range(1, config.epochs + 1):
        losses = []
        for _ in range(config.steps_per_epoch):
            x, y = augment(*sampler.batch(config.batch), generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = network(x)
            loss = dice_bce_loss(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach().item())
            step += 1
            bar.update(step)
        consider(epoch, losses)
    _, state, threshold, val_metrics = best
    final_post = PostProcess(**dict(asdict(post), roi_threshold=threshold))
    return TrainedDetector(state, spec, final_post, config, history, val_metrics, time.perf_counter() - start)


def model_card(trained: TrainedDetector, training_data: dict, test_metrics: dict | None, device: str) -> dict:
    """The detector's model card (catalog.save_model adds id, weights and sha256)."""
    def short(metrics):
        if not metrics:
            return None
        keep = ("sensitivity", "fppi", "precision", "ap", "recall_3d", "false_rois_per_study", "mean_iou_3d")
        return {k: (round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k]) for k in keep}

    return {
        "kind": "detector",
        "name": "2.5D U-Net thrombus detector (phantom)",
        "description": "Segments thrombus on axial 2.5D slices (slice with its neighbours as 3 channels), links "
                       "per-slice regions into 3D objects and reports those above roi_threshold as ROIs.",
        "config": {"network": trained.config.network, "postprocess": asdict(trained.post),
                   "training": {k: v for k, v in asdict(trained.config).items() if k != "network"}},
        "input": trained.spec.to_dict(),
        "output": "per-pixel thrombus probability; ROIs as boxes oriented like the volume",
        "training_data": training_data,
        "training": {"device": device, "seconds": round(trained.seconds, 1), "history": trained.history},
        "metrics": {"val": short(trained.val_metrics), "test": short(test_metrics),
                    "protocol": "per slice: IoU >= 0.1, score >= 0.1; per thrombus: 3D IoU >= 0.1 of voxel extents"},
    }


# Fine-tuning a catalogued detector on a site's studies: a lower rate, a short warm-up, fewer steps.
FINETUNE = {"lr": 5e-4, "warmup_steps": 50, "epochs": 8, "steps_per_epoch": 100}


def finetune_config(parent, seed: int = 0, epochs: int | None = None, steps_per_epoch: int | None = None,
                    batch: int = 16) -> TrainingConfig:
    """The recipe (FINETUNE, `epochs`/`steps_per_epoch` where given) for the network of `parent` (a
    catalog.ModelEntry)."""
    recipe = dict(FINETUNE, **{k: v for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)) if v})
    network = parent.card.get("config", {}).get("network") or TrainingConfig().network
    return TrainingConfig(seed=seed, batch=batch, network=network, **recipe)


def train_and_save(train: list[PreparedStudy], val: list[PreparedStudy], test: list[PreparedStudy],
                   spec: DetectorInput, config: TrainingConfig, device: torch.device, out_dir, model_id: str,
                   training_data: dict, progress: bool = True, parent=None, save: bool = True):
    """Train, select on validation, measure on test, and write weights + model card + FROC into out_dir.

    `parent` (a catalog.ModelEntry): fine-tune that detector, starting from its weights and thresholds.
    `save=False`: write nothing; return (card with "_weights", test metrics) for the caller to save."""
    from pathlib import Path

    from ..models import catalog
    from .evaluation import write_froc

    init_state, post = None, None
    if parent is not None:
        init_state = catalog.load_weights(parent)
        post = PostProcess.from_dict(parent.card.get("config", {}).get("postprocess"))
    trained = train_detector(train, val, spec, config, device, post=post, progress=progress, init_state=init_state)
    network = build_network(config.network)
    network.load_state_dict(trained.state_dict)
    detector = Detector(network.to(device).eval(), spec, trained.post, device, model_id)
    # Training validated in 3D only (fast); the card gets the full per-slice protocol as well.
    trained.val_metrics = detection_metrics([analyse_study(detector, s) for s in val], trained.post.roi_threshold)
    test_metrics = None
    if test:
        outcomes = [analyse_study(detector, s) for s in test]
        test_metrics = detection_metrics(outcomes, trained.post.roi_threshold)
        if save:
            write_froc(outcomes, Path(out_dir) / f"{model_id}-froc-test.png", trained.post.roi_threshold,
                       f"{model_id}: test split ({len(test)} studies)")
    card = model_card(trained, training_data, test_metrics, str(device))
    if parent is not None:
        card["parent"] = catalog.parent_record(parent)
        card["training"]["recipe"] = (f"fine-tuned from '{parent.id}' (lr {config.lr:g}); studies with ROI boxes "
                                      "but no thrombus mask learn from box pseudo-masks (detection.box_targets)")
    if not save:
        return {**card, "_weights": trained.state_dict}, test_metrics
    entry = catalog.save_model(trained.state_dict, card, Path(out_dir), model_id)
    return entry, test_metrics
