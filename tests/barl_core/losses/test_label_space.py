"""DPR and PCBC (barl_core.losses.label_space): zero on agreement, masks, floors, gradients to both branches."""

from __future__ import annotations

import math

import pytest
import torch

from barl_core.losses import (
    dpr_loss,
    pcbc_loss,
)

C = 3


# --------------------------------------------------------------------------- DPR / PCBC


def test_dpr_zero_for_identical_confident_branches_positive_otherwise(sharp):
    labels = [torch.randint(0, C, (2, 8, 8, 8)) for _ in range(3)]
    same = [sharp(lab) for lab in labels]
    assert dpr_loss(same, [t.detach().clone() for t in same]).item() < 1e-6
    other = [sharp((lab + 1) % C) for lab in labels]
    assert dpr_loss(same, other).item() > 10.0


def test_dpr_threshold_masks_unconfident_voxels(random_logits):
    logits = random_logits(shape=(1, C, 4, 4, 4))
    small = [0.01 * t for t in logits]  # max softmax ~ 1/3 everywhere
    loss = dpr_loss(small, [t.flip(-1) for t in small], threshold=0.9)
    assert loss.item() == 0.0
    assert dpr_loss(small, [t.flip(-1) for t in small], threshold=0.0).item() > 0.5


def test_pcbc_exactly_zero_when_branches_agree(random_logits):
    logits = random_logits()
    loss = pcbc_loss(logits, [t.detach().clone() for t in logits])
    assert loss.item() == 0.0
    loss.backward()
    assert math.isfinite(pcbc_loss(logits[:1], logits[:1]).item())


def test_pcbc_only_uses_voxels_that_disagreed_at_the_coarser_scale(random_logits):
    la = random_logits(n_scales=2, shape=(1, C, 6, 6, 6), seed=1)
    lb = random_logits(n_scales=2, shape=(1, C, 6, 6, 6), seed=2)
    base = pcbc_loss(la, lb)
    agreed = (la[0].argmax(1) == lb[0].argmax(1)).unsqueeze(1)
    assert agreed.any() and (~agreed).any()

    def rescale_fine_a(where):
        # Multiplying logits by 3 keeps every argmax (pseudo-labels, masks) but changes CE.
        return [la[0], torch.where(where, 3 * la[1], la[1])]

    torch.testing.assert_close(pcbc_loss(rescale_fine_a(agreed), lb), base)
    assert abs((pcbc_loss(rescale_fine_a(~agreed), lb) - base).item()) > 1e-4


def test_pcbc_targets_the_other_branchs_finest_label(sharp):
    labels = torch.randint(0, C, (1, 4, 4, 4))
    coarse_a, coarse_b = sharp(labels), sharp((labels + 1) % C)  # disagree everywhere
    fine_a, fine_b = sharp(labels), sharp((labels + 2) % C)
    # Each fine map is confident in its own label and wrong for the other branch's: if PCBC
    # used a branch's own pseudo-label, this would be ~0.
    assert pcbc_loss([coarse_a, fine_a], [coarse_b, fine_b]).item() > 20.0
    # Fine maps that agree with the other branch's label give ~0 whatever the coarse maps say.
    assert pcbc_loss([coarse_a, fine_b], [coarse_b, fine_b.detach()]).item() < 1e-6


def test_pcbc_area_floor_normalises_small_disagreement(sharp, random_logits):
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    coarse_a, coarse_b = sharp(labels), labels.clone()
    coarse_b[0, 1, 1, 1] = 1  # one disagreeing voxel of 64
    la = [coarse_a, random_logits(1, (1, C, 4, 4, 4), seed=3)[0]]
    lb = [sharp(coarse_b), random_logits(1, (1, C, 4, 4, 4), seed=4)[0]]
    by_area = pcbc_loss(la, lb, area_floor=1e-3)  # divided by 1 voxel
    floored = pcbc_loss(la, lb, area_floor=0.5)  # divided by 32 voxels
    assert by_area.item() > 0
    assert floored.item() == pytest.approx(by_area.item() / 32, rel=1e-5)


def test_pcbc_urpc_mode_is_finite_and_differentiable(random_logits):
    la, lb = random_logits(seed=5), random_logits(seed=6)
    loss = pcbc_loss(la, lb, mode="urpc")
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert float(la[0].grad.abs().sum()) > 0 and float(lb[0].grad.abs().sum()) > 0
    with pytest.raises(ValueError):
        pcbc_loss(la, lb, mode="nope")
