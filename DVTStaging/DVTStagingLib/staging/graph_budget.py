"""How much memory a forward run with gradients keeps for its backward pass, against a budget.

The answer's forward is kept for the evidence pass (staging.inference) only while what autograd saves
fits: a long ROI through a large network (vdpf-b16: about 0.2 GB per slice pair) would otherwise hold
gigabytes until the evidence maps are drawn.  Saved tensors are counted by storage, once each, leaving out
the network's own weights (they are in memory anyway).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class GraphBudget:
    def __init__(self, limit_bytes: int, model: torch.nn.Module):
        self.limit = limit_bytes
        self.used = 0
        self._seen: set[int] = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._seen |= {b.untyped_storage().data_ptr() for b in model.buffers()}

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.used += storage.nbytes()
        return tensor

    @contextmanager
    def counting(self):
        """Count what the autograd graph built inside saves."""
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
            yield
