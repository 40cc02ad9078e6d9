"""Per-term gradient norms (barl_core.training.gradnorm and the trainer's validation-time hook)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from barl_core.data.dataset import load_dataset
from barl_core.training.gradnorm import term_gradient_norms
from barl_core.training.prepare import prepare_training_data
from barl_core.training.trainer import Trainer


def _tiny_terms():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    y = net(torch.randn(5, 4))
    return net, {"a": y.pow(2).mean(), "b": y.sum(), "const": torch.tensor(0.5)}


def test_a_term_that_is_on_has_a_positive_finite_norm_and_one_that_is_off_none():
    net, losses = _tiny_terms()
    norms = term_gradient_norms(losses, {"a": 1.0, "b": 0.5, "off": 1.0}, list(net.parameters()))
    assert set(norms) == {"gradnorm_a", "gradnorm_b"}  # "off" is not in the losses: no norm
    assert all(math.isfinite(v) and v > 0 for v in norms.values())
    assert term_gradient_norms(losses, {"const": 1.0}, list(net.parameters())) == {"gradnorm_const": 0.0}
    assert all(p.grad is None for p in net.parameters())  # the step's own backward is untouched


def test_the_norm_scales_with_the_weight_and_not_with_the_loss_scale():
    net, losses = _tiny_terms()
    params = list(net.parameters())
    one = term_gradient_norms(losses, {"a": 1.0}, params)["gradnorm_a"]
    assert term_gradient_norms(losses, {"a": 3.0}, params)["gradnorm_a"] == pytest.approx(3 * one, rel=1e-5)
    assert term_gradient_norms(losses, {"a": 1.0}, params, scale=1024.0)["gradnorm_a"] == pytest.approx(one, rel=1e-5)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses["a"], params, retain_graph=True)]).norm()
    assert one == pytest.approx(float(expected), rel=1e-5)


def test_the_cosine_with_the_supervised_gradient_tells_the_direction():
    net, losses = _tiny_terms()
    losses = {**losses, "sup": losses["b"], "against": -2 * losses["b"], "same": 3 * losses["b"]}
    weights = {"sup": 1.0, "against": 1.0, "same": 0.5, "a": 1.0, "const": 1.0}
    norms = term_gradient_norms(losses, weights, list(net.parameters()))
    assert norms["gradcos_same"] == pytest.approx(1.0, abs=1e-5)
    assert norms["gradcos_against"] == pytest.approx(-1.0, abs=1e-5)
    assert -1.0 <= norms["gradcos_a"] <= 1.0
    assert "gradcos_sup" not in norms and "gradcos_const" not in norms  # no direction to compare


@pytest.fixture(scope="module")
def volumes(tiny_phantom_dataset, tiny_config):
    vols, _, names = prepare_training_data(load_dataset(tiny_phantom_dataset("gradnorm")), tiny_config())
    return vols, names


def _rows(volumes, tmp_path, cfg):
    vols, names = volumes
    trainer = Trainer(cfg.with_classes(names), vols, tmp_path, validation_volumes=vols[:1])
    trainer.run_training()
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_the_trainer_logs_each_enabled_term_at_validations_only(volumes, tmp_path, tiny_config):
    cfg = tiny_config(method="barl", iterations=4, disable=("pcbc",), validation={"every": 2})
    rows = _rows(volumes, tmp_path, cfg)
    measured = [r for r in rows if any(k.startswith("gradnorm_") for k in r)]
    assert [r["iteration"] for r in measured] == [2, 4]  # with the validations, not every iteration
    for row in measured:
        assert "val_dice" in row and "gradnorm_pcbc" not in row  # switched off: no norm
        for term in ("sup", "dpr", "region", "instance"):
            assert math.isfinite(row[f"gradnorm_{term}"]) and row[f"gradnorm_{term}"] >= 0
            assert row[f"gradweight_{term}"] >= 0
        assert row["gradnorm_sup"] > 0 and row["gradnorm_dpr"] > 0 and row["gradweight_sup"] == 1.0
        assert -1.0 <= row["gradcos_dpr"] <= 1.0 and "gradcos_sup" not in row


def test_a_term_norm_scales_with_its_weight_and_the_training_is_unchanged(volumes, tmp_path, tiny_config):
    base = dict(method="barl", iterations=2)
    rows = _rows(volumes, tmp_path / "w1", tiny_config(**base, losses={"dpr": 0.1}, validation={"every": 1}))
    rows2 = _rows(volumes, tmp_path / "w2", tiny_config(**base, losses={"dpr": 0.2}, validation={"every": 1}))
    first, first2 = rows[0], rows2[0]  # same seed, same batch, same initial weights
    assert first2["gradnorm_dpr"] == pytest.approx(2 * first["gradnorm_dpr"], rel=1e-4)
    assert first2["gradnorm_sup"] == pytest.approx(first["gradnorm_sup"], rel=1e-6)
    off_cfg = tiny_config(**base, losses={"dpr": 0.1}, validation={"every": 1, "gradnorms": False})
    off = _rows(volumes, tmp_path / "off", off_cfg)
    assert not any(k.startswith("gradnorm_") for r in off for k in r)
    assert [r["loss"] for r in off] == [r["loss"] for r in rows]  # measuring does not change the step
