"""The torch device behind `--device auto|cpu|cuda` (one rule for staging, detection and training)."""

from __future__ import annotations

import os

from ..core.errors import UserError

# What every `--device` option and the panel's device menu offer.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device="auto"):
    """auto: the local rank's GPU when there is one, else the CPU; cuda without a GPU is a user error.

    torch is imported here, not with the module, so that the choices above cost nothing to import.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device)
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}' (use auto, cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is available (use --device cpu or auto)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if name == "auto" or name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)
