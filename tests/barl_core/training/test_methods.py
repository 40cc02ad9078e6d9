"""The training methods through their one interface: build, one step, gradients, checkpoint module.

Kept small on purpose (the trainer tests run every method end to end); this checks the
contract a new method must meet: ``build_method`` by name, ``training_step`` returns a
finite scalar ``loss`` that reaches the trainable parameters, and an unknown name is refused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from barl_core.errors import TrainingError
from barl_core.networks.unet import NetOutput
from barl_core.training.config import METHODS
from barl_core.training.methods import build_method


def _batch(cfg, rng):
    shape = tuple(cfg.patch_size)
    images = torch.from_numpy(rng.normal(size=(1, 1, *shape)).astype("float32"))
    labels = torch.from_numpy(rng.integers(0, 2, size=(1, *shape))).long()
    labels[:, : shape[0] // 2] = cfg.ignore_index  # sparse: half of the patch unannotated
    unlabelled = torch.from_numpy(rng.normal(size=(1, 1, *shape)).astype("float32"))
    return images, labels, unlabelled


@pytest.mark.parametrize("method", METHODS)
def test_one_step_gives_a_finite_loss_with_gradients(method, tiny_config, rng):
    cfg = tiny_config(method=method)
    torch.manual_seed(0)
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    m.train()
    losses = m.training_step(*_batch(cfg, rng), iteration=1)
    assert set(losses) >= {"loss"} and torch.isfinite(losses["loss"]).all()
    losses["loss"].backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert isinstance(m.model_for_checkpoint(), torch.nn.Module)


def test_unknown_method_is_refused(tiny_config):
    cfg = tiny_config()
    cfg.method = "no-such-method"
    with pytest.raises(TrainingError, match="unknown training method"):
        build_method(cfg, "cpu", torch.Generator())


@pytest.mark.parametrize("method", METHODS)
def test_term_weights_rebuild_the_total_loss(method, tiny_config, rng):
    """The per-term gradient norms weigh each term as the total does: check the factors."""
    cfg = tiny_config(method=method, iterations=10)
    torch.manual_seed(0)
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    m.train()
    losses = m.training_step(*_batch(cfg, rng), iteration=3)
    weights = m.term_weights(3)
    assert weights and set(weights) <= set(losses) and "loss" not in weights
    rebuilt = sum(w * losses[t] for t, w in weights.items())
    assert float(rebuilt) == pytest.approx(float(losses["loss"]), rel=1e-6, abs=1e-7)


def test_barl_region_contrast_mode_trains_the_features(tiny_config, rng):
    """``region_mode="contrast"`` enters the loss and sends a gradient into the projection head."""
    cfg = tiny_config(method="barl", iterations=10)
    cfg.losses.region_mode = "contrast"
    cfg.losses.region_min_voxels = 1
    cfg.disable = ("dpr", "pcbc", "instance")
    torch.manual_seed(0)
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    m.train()
    losses = m.training_step(*_batch(cfg, rng), iteration=9)
    assert float(losses["region"]) > 0.01  # the prototype mode starts near 0 on fresh branches
    (losses["loss"] - losses["sup"]).backward()
    head = [p.grad for n, p in m.net.named_parameters() if "projection" in n]
    assert head and any(g is not None and float(g.abs().sum()) > 0 for g in head)


def test_unknown_region_mode_is_refused():
    from barl_core.losses import LossConfig, LossConfigError

    with pytest.raises(LossConfigError, match="region_mode"):
        LossConfig(region_mode="nope")


@pytest.mark.parametrize("method", ["barl", "cps"])
def test_cutmix_feeds_the_strong_branch_a_mixed_view_and_unmixes_its_outputs(method, tiny_config, rng):
    """With an identity network the un-mixed strong output must be the strong view itself.

    The branch must *see* a mixed view (else nothing was mixed), and every loss downstream
    compares the branches voxel by voxel, so what comes back must be over the original voxels.
    """
    cfg = tiny_config(method=method, iterations=10)
    cfg.losses.cutmix_prob = 1.0
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    seen = {}

    def identity(name, x, return_features=False):
        seen[name] = x
        return NetOutput([x * 2, x], F.avg_pool3d(x, 2) if return_features else None)

    m.run = identity
    images, labels, unlabelled = _batch(cfg, rng)
    images, labels = images.repeat(2, 1, 1, 1, 1), labels.repeat(2, 1, 1, 1)
    views, _ = m.views(images, labels, unlabelled)
    for iteration in (0, 1):  # strong view to B, then to A
        out_a, out_b, weak_to_a = m.forward_pair(views, iteration, features=True)
        strong_name, out_s, out_w = ("b", out_b, out_a) if weak_to_a else ("a", out_a, out_b)
        assert not torch.equal(seen[strong_name], views.strong)  # the branch saw a mixed view
        assert torch.equal(out_s.logits[-1], views.strong)
        assert torch.equal(out_s.logits[0], views.strong * 2)
        assert torch.equal(out_w.logits[-1], views.weak)
        assert out_s.features.shape == out_w.features.shape


def test_cutmix_off_leaves_the_views_alone(tiny_config, rng):
    cfg = tiny_config(method="barl", iterations=10)
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    seen = {}

    def identity(name, x, return_features=False):
        seen[name] = x
        return NetOutput([x], None)

    m.run = identity
    views, _ = m.views(*_batch(cfg, rng)[:2], _batch(cfg, rng)[2])
    m.forward_pair(views, 0, features=False)
    assert torch.equal(seen["b"], views.strong) and torch.equal(seen["a"], views.weak)


def test_barl_ema_teachers_give_the_pseudo_labels_and_follow_their_branches(tiny_config, rng):
    """``teacher_ema``: DPR's targets come from frozen copies that move by EMA after each step."""
    cfg = tiny_config(method="barl", iterations=10)
    cfg.losses.teacher_ema = 0.5
    cfg.disable = ("pcbc", "region", "instance")
    torch.manual_seed(0)
    m = build_method(cfg, "cpu", torch.Generator().manual_seed(0))
    m.train()
    batch = _batch(cfg, rng)
    m.training_step(*batch, iteration=9)
    teachers = m._teachers
    assert teachers is not None and not any(p.requires_grad for p in teachers.parameters())
    # scramble the teachers: the DPR value must change, since its targets are theirs
    before = float(m.training_step(*batch, iteration=9)["dpr"])
    with torch.no_grad():
        for p in teachers.parameters():
            p.normal_()
    after = float(m.training_step(*batch, iteration=9)["dpr"])
    assert after != pytest.approx(before, rel=1e-3)
    p_t, p_s = next(teachers.parameters()), next(m.net.parameters())
    expected = 0.5 * p_t.detach().clone() + 0.5 * p_s.detach()
    m.after_optimizer_step(9)
    assert torch.allclose(p_t, expected)


def test_ema_teachers_are_not_combined_with_cutmix():
    from barl_core.losses import LossConfig, LossConfigError

    with pytest.raises(LossConfigError, match="teacher_ema"):
        LossConfig(teacher_ema=0.99, cutmix_prob=0.5)
