"""Cut-mix of the strong view: the mix moves the right box, and un-mixing is its exact inverse."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from barl_core.data.cutmix import BoxMix, sample_box_mix


def test_mix_pastes_the_next_samples_box_and_unmix_inverts_it():
    x = torch.arange(3 * 2 * 8 * 6 * 4, dtype=torch.float32).reshape(3, 2, 8, 6, 4)
    mix = BoxMix((0.25, 0.5, 0.0), (0.75, 1.0, 0.5))
    mixed = mix.mix(x)
    box = (slice(None), slice(2, 6), slice(3, 6), slice(0, 2))
    for i in range(3):
        assert torch.equal(mixed[i][box], x[(i + 1) % 3][box])
        outside = torch.ones_like(x[i], dtype=torch.bool)
        outside[box] = False
        assert torch.equal(mixed[i][outside], x[i][outside])
    assert torch.equal(mix.unmix(mixed), x)


def test_the_same_box_fractions_apply_to_pooled_outputs():
    """The features are pooled by 2: un-mixing the pooled mixed input gives the pooled input."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, 16, 24, 16, generator=g)
    mix = BoxMix((0.25, 0.5, 0.125), (0.75, 1.0, 0.625))  # on even voxel boundaries
    pooled = F.avg_pool3d(mix.mix(x), 2)
    assert torch.allclose(mix.unmix(pooled), F.avg_pool3d(x, 2))


def test_gradients_flow_through_unmix_to_the_right_samples():
    x = torch.zeros(2, 1, 4, 4, 4, requires_grad=True)
    mix = BoxMix((0.0, 0.0, 0.0), (0.5, 1.0, 1.0))
    out = mix.unmix(x)
    out[0].sum().backward()
    # out[0] takes its box from x[1] (unmix = roll back) and the rest from x[0]
    assert float(x.grad[1, :, :2].sum()) == 32 and float(x.grad[0, :, :2].sum()) == 0
    assert float(x.grad[0, :, 2:].sum()) == 32


def test_a_single_sample_is_left_alone():
    x = torch.randn(1, 1, 4, 4, 4)
    assert torch.equal(BoxMix((0, 0, 0), (1, 1, 1)).mix(x), x)


@pytest.mark.parametrize("seed", range(20))
def test_sampled_boxes_lie_inside_the_patch_with_sides_in_range(seed):
    mix = sample_box_mix(torch.Generator().manual_seed(seed))
    for lo, hi in zip(mix.lo, mix.hi, strict=True):
        assert 0.0 <= lo < hi <= 1.0 + 1e-9
        assert 0.4 - 1e-9 <= hi - lo <= 0.8 + 1e-9
