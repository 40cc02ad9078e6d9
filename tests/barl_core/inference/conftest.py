"""Fixtures of the inference tests: a small two-branch network (divisor 4) and its window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from barl_core.inference.model import LoadedModel
from barl_core.networks.unet import BiBranchNet, NetworkConfig

CFG = NetworkConfig(num_classes=3, base_channels=4, proj_dim=4, depth=3)  # divisor 4
WINDOW = (8, 12, 12)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return BiBranchNet(CFG).eval()


@pytest.fixture(scope="module")
def model(net):
    return LoadedModel.from_module(net, patch_size=WINDOW)


def write_checkpoint(path, net, **extra):
    """Save ``net`` (a :data:`CFG` two-branch network) as a ``barl`` checkpoint file at ``path``."""
    from dataclasses import asdict

    from barl_core.training.checkpoint import save_checkpoint

    ckpt = {
        "method": "barl", "n_branches": 2, "model_state": net.state_dict(), "network": asdict(CFG),
        "class_names": ["background", "tooth", "lesion"], "ignore_index": 255, "normalization": None,
        "norm_config": {"lower_percentile": 0.5, "upper_percentile": 99.5, "mode": "percentile_zscore"},
        "target_spacing": None, "patch_size": list(WINDOW), "iteration": 3, "total_iterations": 3,
        "config": {}, "optimizer_state": None, "scaler_state": None, "rng_state": None, "history": [],
    }
    ckpt.update(extra)
    return save_checkpoint(path, ckpt)


def softmax_pair(net, x: np.ndarray):
    """Both branches' softmax of one window, ``[C, *x.shape]`` each."""
    with torch.no_grad():
        la, lb = net.forward_logits(torch.from_numpy(x)[None, None])
    return la.softmax(1)[0], lb.softmax(1)[0]
