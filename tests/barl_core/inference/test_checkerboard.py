"""The disagreement map has no checkerboard (issue 15): neither the network's nor the grid's.

A U-Net's stride-2 layers leave a ripple of period 2 in each branch's output, counted from
the window's corner, and the two branches' ripples differ. The model here is that and
nothing else: both branches see a smooth ramp, one of them adds a parity ripple relative to
the window's corner. The true disagreement is smooth, so the map must have no period-2
component, and no seam: its second difference along every axis is that of a smooth map.
The volume's size spreads the windows at odd and even starts, as a real CT often does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from barl_core.inference.agreement import predict_with_agreement
from barl_core.inference.model import LoadedModel
from barl_core.inference.window import sliding_window, window_starts
from barl_core.io.volume import Volume
from barl_core.networks.unet import NetworkConfig

CFG = NetworkConfig(num_classes=2, base_channels=2, proj_dim=0, depth=2)  # divisor 2
WINDOW = (8, 12, 12)
SHAPE = (16, 31, 29)  # spreads windows at odd and even starts along y and x


class _Branch(nn.Module):
    """Class-1 logit = the input, plus ``ripple`` times the parity of the window-local index."""

    def __init__(self, ripple: float) -> None:
        super().__init__()
        self.cfg, self.ripple = CFG, ripple

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        z, y, w = (torch.arange(n) for n in x.shape[2:])
        parity = (-1.0) ** (z[:, None, None] + y[None, :, None] + w[None, None, :])
        one = x + self.ripple * parity
        return torch.cat([torch.zeros_like(one), one], 1)


class _TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cfg = CFG
        self.branch_a, self.branch_b = _Branch(0.0), _Branch(1.0)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.branch_a.forward_logits(x), self.branch_b.forward_logits(x)


def _ramp() -> np.ndarray:
    z, y, x = np.meshgrid(*(np.linspace(0.5, 1.5, n) for n in SHAPE), indexing="ij")
    return ((z + y + x) / 3).astype(np.float32)


def _max_second_difference(d: np.ndarray) -> float:
    """Largest |d[k-1] - 2 d[k] + d[k+1]| along any axis, away from the volume's edges."""
    d = d.astype(np.float64)[1:-1, 1:-1, 1:-1]
    out = 0.0
    for ax in range(3):
        n = d.shape[ax]
        sec = (
            np.take(d, range(0, n - 2), ax)
            - 2 * np.take(d, range(1, n - 1), ax)
            + np.take(d, range(2, n), ax)
        )
        out = max(out, float(np.abs(sec).max()))
    return out


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return LoadedModel.from_module(_TwoBranches(), patch_size=WINDOW)


def test_the_grid_would_mix_phases():
    """Without alignment the windows of this volume start at odd and even voxels."""
    assert {s % 2 for s in window_starts(SHAPE[1], WINDOW[1], 0.5)} == {0, 1}
    assert {s % 2 for s in window_starts(SHAPE[1] + 1, WINDOW[1], 0.5, 2)} == {0}


def test_sliding_window_disagreement_is_smooth(model):
    d = sliding_window(model, _ramp(), precision="float32").disagreement
    assert float(d.mean()) > 0.01  # the branches do disagree
    # smooth: ~2e-4 (float16 steps); with a checkerboard or seams it was 0.047
    assert _max_second_difference(d) < 2e-3


def test_agreement_disagreement_is_smooth(model):
    """The app's path (each branch on its own, combined after) gives the same smooth map."""
    pred = predict_with_agreement(model, Volume(_ramp()), precision="float32", check_memory=False)
    assert float(pred.disagreement.mean()) > 0.01
    assert _max_second_difference(pred.disagreement) < 2e-3
