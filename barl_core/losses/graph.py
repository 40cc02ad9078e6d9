"""Numerical helpers every loss term shares: float32 islands under autocast, a graph-attached zero."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["EPS", "no_autocast", "zero_like_graph"]

#: Guards divisions and logarithms of the terms.
EPS = 1e-6


def no_autocast(t: Tensor) -> torch.autocast:
    """Disable autocast: prototype sums run over up to ~10^5 voxels and overflow float16."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def zero_like_graph(*tensors: Tensor) -> Tensor:
    """Exact 0.0 that stays in the autograd graph (so ``backward()`` always works)."""
    return sum((t.float().sum() * 0.0 for t in tensors), torch.zeros((), device=tensors[0].device))
