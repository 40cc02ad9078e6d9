"""Weak/strong views: one spatial transform for everything, photometric change only on strong."""

from __future__ import annotations

import torch

from barl_core.data.augment import AugmentConfig, make_views, photometric_augment, spatial_augment


def _batch(shape=(3, 1, 8, 12, 12)):
    labels = torch.randint(0, 4, (shape[0], *shape[2:]), generator=torch.Generator().manual_seed(1))
    return labels.float().unsqueeze(1), labels


def test_labels_follow_the_image_transform():
    images, labels = _batch()
    seen_change = False
    for seed in range(6):
        out_i, out_l = spatial_augment(images, labels, torch.Generator().manual_seed(seed))
        assert torch.equal(out_i[:, 0], out_l.float())
        seen_change |= not torch.equal(out_l, labels)
    assert seen_change  # the transform does something


def test_strong_view_is_voxel_aligned_with_weak():
    images, labels = _batch()
    images = images + torch.linspace(0, 0.5, images.numel()).view(images.shape)  # distinct values
    cfg = AugmentConfig(noise_std=0.0, blur_prob=0.0)
    views = make_views(images, labels, torch.Generator().manual_seed(0), cfg)
    assert torch.equal(
        views.weak[:, 0].floor(), views.labels.float()
    )  # labels follow the weak view
    assert not torch.allclose(views.weak, views.strong)
    # Without noise/blur the strong view is a monotone intensity map of the weak one:
    # sorting the weak voxels sorts the strong ones, i.e. no voxel moved.
    for b in range(images.shape[0]):
        order = torch.argsort(views.weak[b].flatten())
        s = views.strong[b].flatten()[order]
        assert bool((s[1:] >= s[:-1] - 1e-5).all())


def test_seeded_and_inputs_untouched():
    images, labels = _batch()
    before = images.clone()
    a = make_views(images, labels, torch.Generator().manual_seed(5))
    b = make_views(images, labels, torch.Generator().manual_seed(5))
    c = make_views(images, labels, torch.Generator().manual_seed(6))
    assert torch.equal(a.strong, b.strong) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.strong, c.strong)
    assert torch.equal(images, before)


def test_non_square_patches_keep_their_shape():
    images = torch.randn(4, 1, 8, 8, 16)
    cfg = AugmentConfig(rot90_prob=1.0)
    out, _ = spatial_augment(images, None, torch.Generator().manual_seed(0), cfg)
    assert out.shape == images.shape
    strong = photometric_augment(
        out, torch.Generator().manual_seed(0), AugmentConfig(blur_prob=1.0)
    )
    assert strong.shape == images.shape and torch.isfinite(strong).all()
