"""The supervised term (barl_core.losses.supervised): ignore handling, zero cases, learning."""

from __future__ import annotations

import math

import pytest
import torch

from barl_core.errors import LabelValueError
from barl_core.losses import (
    supervised_loss,
)
from barl_core.networks.unet import NetworkConfig, UNet3D

C = 3


# --------------------------------------------------------------------------- supervised


def test_supervised_ignores_unannotated_voxels(random_logits):
    torch.manual_seed(0)
    target = torch.randint(0, C, (2, 8, 8, 8))
    target[:, 1::2] = 255  # only even slices annotated
    logits = random_logits()
    base = supervised_loss(logits, target)
    ignored = (target == 255).unsqueeze(1).expand_as(logits[0])
    changed = [torch.where(ignored, t + 5 * torch.randn_like(t), t) for t in logits]
    torch.testing.assert_close(supervised_loss(changed, target), base)
    touched = [torch.where(~ignored, t + 5 * torch.randn_like(t), t) for t in logits]
    assert abs((supervised_loss(touched, target) - base).item()) > 1e-3


def test_supervised_zero_on_all_ignore_and_small_on_perfect_prediction(sharp, random_logits):
    target = torch.full((1, 8, 8, 8), 255)
    logits = random_logits(shape=(1, C, 8, 8, 8))
    loss = supervised_loss(logits, target)
    assert loss.item() == 0.0
    loss.backward()  # still in the graph
    assert logits[0].grad is not None and float(logits[0].grad.abs().sum()) == 0.0

    labels = torch.randint(0, C, (1, 8, 8, 8))
    perfect = supervised_loss([sharp(labels)] * 2, labels)
    wrong = supervised_loss([sharp((labels + 1) % C)] * 2, labels)
    assert perfect.item() < 1e-3 < 1.0 < wrong.item()


def test_supervised_rejects_unknown_label_values(random_logits):
    target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    target[0, 0, 0, 0] = 7
    with pytest.raises(LabelValueError, match="outside"):
        supervised_loss(random_logits(shape=(1, C, 8, 8, 8)), target)


def test_supervised_loss_decreases_when_training_a_tiny_net():
    torch.manual_seed(0)
    image = 0.3 * torch.randn(1, 1, 16, 16, 16)
    target = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    target[:, 4:12, 5:11, 3:13] = 1
    image[target.unsqueeze(1) == 1] += 1.0
    sparse = torch.full_like(target, 255)
    sparse[:, [4, 9, 13]] = target[:, [4, 9, 13]]  # three labelled slices
    net = UNet3D(NetworkConfig(num_classes=2, base_channels=4, depth=2, proj_dim=0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = supervised_loss(net(image, return_features=False).logits, sparse)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]
