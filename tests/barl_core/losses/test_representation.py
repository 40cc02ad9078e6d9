"""Region and instance alignment (barl_core.losses.representation): prototypes, downsampling, Hungarian matching, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from barl_core.losses import (
    downsample_labels,
    dpr_loss,
    instance_matching_loss,
    match_instances,
    pcbc_loss,
    region_alignment_loss,
    region_contrast_loss,
)
from barl_core.networks.unet import BiBranchNet, NetworkConfig

C = 3


# --------------------------------------------------------------------------- region


def test_region_alignment_zero_when_identical_and_two_when_opposite():
    torch.manual_seed(0)
    feat = F.normalize(torch.randn(2, 6, 4, 4, 4), dim=1)
    labels = torch.randint(0, C, (2, 4, 4, 4))
    assert region_alignment_loss(feat, feat.clone(), labels, C, min_voxels=2).item() < 1e-6
    opposite = region_alignment_loss(feat, -feat, labels, C, min_voxels=2)
    assert opposite.item() == pytest.approx(2.0, abs=1e-5)


def test_region_alignment_counts_only_classes_with_enough_voxels():
    torch.manual_seed(1)
    feat = torch.randn(1, 4, 4, 4, 4)
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 0, 0, :3] = 1  # class 1: 3 voxels
    labels[0, 3] = 255
    flipped = torch.where((labels == 1).unsqueeze(1), -feat, feat)
    # Class 0 agrees (loss 0), class 1 is opposite (loss 2): mean 1 when both count.
    both = region_alignment_loss(feat, flipped, labels, C, min_voxels=3)
    assert both.item() == pytest.approx(1.0, abs=1e-5)
    assert region_alignment_loss(feat, flipped, labels, C, min_voxels=4).item() < 1e-6
    # Ignored voxels never enter a prototype.
    ignored_flip = torch.where((labels == 255).unsqueeze(1), -feat, feat)
    assert region_alignment_loss(feat, ignored_flip, labels, C, min_voxels=3).item() < 1e-6


def test_region_alignment_exactly_zero_without_qualifying_class():
    feat = torch.randn(1, 4, 4, 4, 4, requires_grad=True)
    ignore = torch.full((1, 4, 4, 4), 255)
    loss = region_alignment_loss(feat, feat.flip(-1), ignore, C)
    assert loss.item() == 0.0
    loss.backward()
    big = region_alignment_loss(feat, -feat, torch.zeros(1, 4, 4, 4, dtype=torch.long), C, 65)
    assert big.item() == 0.0


def _separated(labels: torch.Tensor, dims: int = 4) -> torch.Tensor:
    """Unit features pointing along axis ``label`` (classes perfectly separated)."""
    return F.one_hot(labels, dims).movedim(-1, 1).float()


def test_region_contrast_keeps_a_gradient_where_the_prototype_loss_is_flat():
    """Identical branches whose features ignore the classes: prototypes agree, contrast does not."""
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, :2] = 1
    torch.manual_seed(0)
    feat = F.normalize(torch.randn(1, 4, 4, 4, 4), dim=1).requires_grad_()
    assert region_alignment_loss(feat, feat, labels, C, min_voxels=2).item() < 1e-6
    contrast = region_contrast_loss(feat, feat, labels, C, temperature=0.1, min_voxels=2)
    assert contrast.item() > 0.3
    contrast.backward()
    assert feat.grad.abs().sum() > 0
    # a constant feature map is the saddle: no class can be told apart, CE = log(2)
    flat = F.normalize(torch.ones(1, 4, 4, 4, 4), dim=1)
    assert region_contrast_loss(flat, flat, labels, C, min_voxels=2).item() == pytest.approx(math.log(2), abs=1e-5)


def test_region_contrast_small_when_separated_and_large_when_swapped():
    labels = torch.randint(0, C, (2, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    feat = _separated(labels)
    good = region_contrast_loss(feat, feat.clone(), labels, C, temperature=0.1, min_voxels=1)
    assert good.item() < 1e-3
    # branch b puts class 0 where a puts class 1: a's voxels land on b's wrong prototype
    swapped = _separated(torch.where(labels == 0, 1, torch.where(labels == 1, 0, labels)))
    bad = region_contrast_loss(feat, swapped, labels, C, temperature=0.1, min_voxels=1)
    assert bad.item() > 3.0


def test_region_contrast_weighs_a_small_class_like_the_background():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 0, 0, :2] = 1  # 2 voxels of class 1 against 62 of background
    feat = _separated(labels)
    wrong_small = torch.where((labels == 1).unsqueeze(1), _separated(torch.zeros_like(labels)), feat)
    # only the 2 small-class voxels of branch a sit on the wrong side: the per-class mean keeps
    # their CE at half the loss instead of 2/64 of it
    loss = region_contrast_loss(wrong_small, feat, labels, C, temperature=0.1, min_voxels=1)
    assert loss.item() > 0.25 * 10.0 * 0.9  # 0.5 * mean over 2 classes of (CE_a ~ 10 + CE_b ~ 0)


def test_region_contrast_zero_in_graph_with_fewer_than_two_classes():
    feat = torch.randn(1, 4, 4, 4, 4, requires_grad=True)
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 0, 0, 0] = 1  # one voxel of class 1: below min_voxels
    loss = region_contrast_loss(feat, feat.flip(-1), labels, C, min_voxels=2)
    assert loss.item() == 0.0
    loss.backward()
    ignored = region_contrast_loss(feat, feat, torch.full((1, 4, 4, 4), 255), C)
    assert ignored.item() == 0.0


def test_alignment_losses_stay_float32_under_autocast():
    feat_a, feat_b, fg_a, fg_b = _two_blob_case(seed=7)
    labels = torch.randint(0, C, (1, 8, 6, 6), generator=torch.Generator().manual_seed(0))
    ref_region = region_alignment_loss(feat_a, feat_b, labels, C, min_voxels=2)
    ref_instance = instance_matching_loss(feat_a, feat_b, fg_a, fg_b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        region = region_alignment_loss(feat_a, feat_b, labels, C, min_voxels=2)
        instance = instance_matching_loss(feat_a, feat_b, fg_a, fg_b)
    assert region.dtype == instance.dtype == torch.float32
    torch.testing.assert_close(region, ref_region, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(instance, ref_instance, rtol=1e-5, atol=1e-6)


def test_region_alignment_checks_shapes():
    feat = torch.randn(1, 4, 4, 4, 4)
    with pytest.raises(ValueError, match="feature resolution"):
        region_alignment_loss(feat, feat, torch.zeros(1, 8, 8, 8, dtype=torch.long), C)


# --------------------------------------------------------------------------- downsampling


def test_downsample_labels_keeps_sparse_slices_and_ignore():
    labels = torch.full((1, 8, 8, 8), 255)
    labels[0, 3] = 2  # one labelled slice at an odd index
    small = downsample_labels(labels, (4, 4, 4))
    assert small.shape == (1, 4, 4, 4)
    assert (small[0, 1] == 2).all()  # z-block {2, 3} holds the annotation
    assert (small[0, [0, 2, 3]] == 255).all()


def test_downsample_labels_majority_vote():
    labels = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    labels.view(-1)[:5] = 1
    labels.view(-1)[5] = 255
    assert downsample_labels(labels, (1, 1, 1)).item() == 1
    labels.view(-1)[:5] = 255
    assert downsample_labels(labels, (1, 1, 1), num_classes=3).item() == 0
    assert downsample_labels(torch.zeros(2, 6, 9, 8, dtype=torch.long), (3, 3, 4)).shape == (
        2,
        3,
        3,
        4,
    )


# --------------------------------------------------------------------------- instances


def _two_blob_case(seed=0):
    """Two instances per branch in opposite halves (z 0:3 and z 5:8), features random."""
    g = torch.Generator().manual_seed(seed)
    fg_a = torch.zeros(1, 8, 6, 6, dtype=torch.bool)
    fg_b = torch.zeros_like(fg_a)
    fg_a[0, 0:3, 1:5, 1:5] = True  # large blob
    fg_b[0, 0:3, 2:5, 1:5] = True
    fg_a[0, 5:7, 0:2, 0:3] = True  # small blob
    fg_b[0, 5:8, 0:2, 1:3] = True
    feat_a = torch.randn(1, 5, 8, 6, 6, generator=g)
    feat_b = torch.randn(1, 5, 8, 6, 6, generator=g)
    return feat_a, feat_b, fg_a, fg_b


def test_instance_loss_zero_for_identical_branches():
    feat_a, _, fg_a, _ = _two_blob_case()
    loss = instance_matching_loss(feat_a, feat_a.clone(), fg_a, fg_a.clone())
    assert abs(loss.item()) < 1e-6
    feat_a, feat_b, fg_a, fg_b = _two_blob_case()
    assert instance_matching_loss(feat_a, feat_b, fg_a, fg_b).item() > 0.1


def test_instance_loss_exactly_zero_when_nothing_matches():
    feat_a, feat_b, fg_a, fg_b = _two_blob_case()
    feat_a.requires_grad_()
    empty = torch.zeros_like(fg_a)
    for a, b in [(empty, empty), (fg_a, empty), (empty, fg_b)]:
        loss = instance_matching_loss(feat_a, feat_b, a, b)
        assert loss.item() == 0.0
    disjoint_b = torch.zeros_like(fg_a)
    disjoint_b[0, 3:5, 5, 5] = True
    disjoint_b[0, 3, 0, 5] = True
    loss = instance_matching_loss(feat_a, feat_b, fg_a, disjoint_b, min_size=1)
    assert loss.item() == 0.0
    loss.backward()
    # Components below min_size are dropped: no pair either.
    assert instance_matching_loss(feat_a, feat_b, fg_a, fg_b, min_size=1000).item() == 0.0


def test_instance_loss_invariant_to_relabelling_instances():
    feat_a, feat_b, fg_a, fg_b = _two_blob_case(seed=3)
    base = instance_matching_loss(feat_a, feat_b, fg_a, fg_b)

    def swap_halves(t):  # moves blob 2 to the top: component ids come out in the other order
        return torch.cat([t[..., 5:8, :, :], t[..., 3:5, :, :], t[..., 0:3, :, :]], dim=-3)

    swapped = instance_matching_loss(*(swap_halves(t) for t in (feat_a, feat_b, fg_a, fg_b)))
    torch.testing.assert_close(swapped, base)
    # And the result does not depend on where the blobs sit in the batch order either.
    batch = [torch.cat([t, swap_halves(t)]) for t in (feat_a, feat_b, fg_a, fg_b)]
    torch.testing.assert_close(instance_matching_loss(*batch), base)


def _interval_mask(*intervals):
    mask = np.zeros((1, 2, 20), dtype=bool)
    for lo, hi in intervals:
        mask[:, :, lo:hi] = True
    return mask


def test_hungarian_matching_beats_greedy():
    # a1=[0,10) a2=[11,16); b2=[0,3) b1=[4,14). Greedy takes (a1,b1) (IoU .43) and leaves a2
    # without a partner; the assignment maximising total IoU is (a1,b2)=.30 + (a2,b1)=.25.
    fg_a = _interval_mask((0, 10), (11, 16))
    fg_b = _interval_mask((0, 3), (4, 14))
    labels_a, labels_b, pairs = match_instances(fg_a, fg_b, min_size=1)
    a1, a2 = labels_a[0, 0, 0], labels_a[0, 0, 12]
    b2, b1 = labels_b[0, 0, 0], labels_b[0, 0, 5]
    assert {(p[0], p[1]) for p in pairs} == {(a1, b2), (a2, b1)}
    ious = {(p[0], p[1]): p[2] for p in pairs}
    assert ious[(a1, b2)] == pytest.approx(0.3) and ious[(a2, b1)] == pytest.approx(0.25)
    # The threshold drops the weaker pair.
    _, _, strict = match_instances(fg_a, fg_b, min_size=1, iou_threshold=0.28)
    assert [(p[0], p[1]) for p in strict] == [(a1, b2)]

    # The loss uses exactly those pairs.
    torch.manual_seed(0)
    feat_a, feat_b = torch.randn(2, 1, 4, 1, 2, 20).unbind(0)
    loss = instance_matching_loss(
        feat_a, feat_b, torch.from_numpy(fg_a)[None], torch.from_numpy(fg_b)[None], min_size=1
    )

    def mean_feat(feat, interval):
        return feat[0, :, :, :, interval[0] : interval[1]].flatten(1).mean(1)

    expected = [
        1 - F.cosine_similarity(mean_feat(feat_a, ia), mean_feat(feat_b, ib), dim=0)
        for ia, ib in [((0, 10), (0, 3)), ((11, 16), (4, 14))]
    ]
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_top_k_keeps_the_largest_components():
    fg_a = _interval_mask((0, 2), (3, 9), (10, 13))
    labels_a, _, pairs = match_instances(fg_a, fg_a.copy(), min_size=1, top_k=1)
    assert [p[0] for p in pairs] == [labels_a[0, 0, 4]]
    _, _, pairs = match_instances(fg_a, fg_a.copy(), min_size=5, top_k=8)
    assert len(pairs) == 2  # the 2-voxel-long (4 voxels) component is dropped


def test_components_are_26_connected():
    fg = np.zeros((3, 3, 3), dtype=bool)
    fg[0, 0, 0] = fg[1, 1, 1] = fg[2, 2, 2] = True  # corner-touching diagonal
    labels, _, pairs = match_instances(fg, fg.copy(), min_size=3)
    assert labels.max() == 1 and len(pairs) == 1


# --------------------------------------------------------------------------- gradients


def _cross_losses():
    half = (8, 8, 8)

    def region(a, b):
        g = torch.Generator().manual_seed(0)
        labels = torch.randint(0, C, (2, *half), generator=g)
        return region_alignment_loss(a.features, b.features, labels, C, min_voxels=4)

    def instance(a, b):
        fg = torch.zeros(2, *half, dtype=torch.bool)
        fg[:, 2:6, 2:6, 2:6] = True
        return instance_matching_loss(a.features, b.features, fg, fg.clone())

    return {
        "dpr": lambda a, b: dpr_loss(a.logits, b.logits),
        "pcbc": lambda a, b: pcbc_loss(a.logits, b.logits),
        "urpc": lambda a, b: pcbc_loss(a.logits, b.logits, mode="urpc"),
        "region": region,
        "instance": instance,
    }


@pytest.mark.parametrize("name", list(_cross_losses()))
def test_gradients_reach_both_branches(name):
    torch.manual_seed(0)
    net = BiBranchNet(NetworkConfig(num_classes=C, base_channels=4, depth=3, proj_dim=8))
    out_a, out_b = net(torch.randn(2, 1, 16, 16, 16))
    loss = _cross_losses()[name](out_a, out_b)
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    for branch in (net.branch_a, net.branch_b):
        grad = sum(float(p.grad.abs().sum()) for p in branch.parameters() if p.grad is not None)
        assert grad > 0, f"{name}: no gradient in a branch"
