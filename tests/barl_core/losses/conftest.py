"""Helpers of the loss tests, as fixtures: confident logits from labels, random multi-scale logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

C = 3


@pytest.fixture
def sharp():
    """Factory: confident logits whose argmax is ``labels`` ([B, *sp] -> [B, C, *sp])."""

    def make(labels: torch.Tensor, scale: float = 30.0) -> torch.Tensor:
        return (F.one_hot(labels, C).movedim(-1, 1).float() * scale).requires_grad_()

    return make


@pytest.fixture
def random_logits():
    """Factory: ``n_scales`` random logit tensors that require grad, seeded."""

    def make(n_scales=3, shape=(2, C, 8, 8, 8), seed=0):
        g = torch.Generator().manual_seed(seed)
        return [torch.randn(shape, generator=g).requires_grad_() for _ in range(n_scales)]

    return make
