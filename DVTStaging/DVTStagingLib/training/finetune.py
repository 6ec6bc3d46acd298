"""Fine-tuning from a catalogued model: a recipe for the tens of labeled studies a site has.

From scratch the staging model needed about 1,200 studies.  Starting from a trained model, a few epochs at a
lower learning rate are enough, and the shared ViT encoder learns at a tenth of the fusion module's and
head's rate (layer-wise rates: what the encoder learned of slices moves little, how the global and local
views are weighed against each other adapts).  Early stopping on the validation split, as in training.  The
augmentations are the training set's own, which cover gain, contrast curve, noise and orientation: what
differs between sites.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.errors import UserError
from ..models.catalog import ModelEntry, load_weights, resolve
from ..models.config import ModelConfig
from ..staging.trust import TRUST_PREFIX

LR_FACTOR = 0.3            # of the parent's training learning rate
EPOCHS = 15
WARMUP_EPOCHS = 1
PATIENCE = 5
ENCODER_LR_SCALE = 0.1     # the encoder's share of the learning rate


def parent_staging(model: str) -> tuple[ModelEntry, ModelConfig, dict]:
    """The catalogued staging model to start from: its entry, network config and weights (checked by sha256),
    without its trust tensors (the fine-tuned model gets its own, fitted on the new data)."""
    entry = resolve(model, "staging")
    state = {k: v for k, v in load_weights(entry).items() if not k.startswith(TRUST_PREFIX)}
    try:
        cfg = ModelConfig.from_dict(entry.card["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"model card {entry.card_path} has no usable network config ({exc})") from None
    return entry, cfg, state


def finetune_config(cfg: ModelConfig, epochs: int | None = None) -> ModelConfig:
    """The parent's network config with the small-data recipe."""
    epochs = epochs or EPOCHS
    return replace(cfg, lr=cfg.lr * LR_FACTOR, epochs=epochs, warmup_epochs=min(WARMUP_EPOCHS, epochs),
                   patience=PATIENCE)

