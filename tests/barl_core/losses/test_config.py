"""Loss weights, switches and ramp-up (barl_core.losses.config)."""

from __future__ import annotations

import math

import pytest

from barl_core.losses import (
    LossConfig,
    LossConfigError,
    gaussian_rampup,
)

C = 3


# --------------------------------------------------------------------------- config / ramp


def test_gaussian_rampup_shape():
    values = [gaussian_rampup(i, 100, 0.4) for i in range(0, 101, 5)]
    assert values[0] == pytest.approx(math.exp(-5))
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert values[8] == 1.0 and values[-1] == 1.0  # it = 40: ramp done
    assert gaussian_rampup(0, 100, 0.0) == 1.0


def test_fixed_rampup_does_not_depend_on_the_run_length():
    """``rampup_iterations``: a term's weight at iteration t is the same in a short and a long run."""
    fixed = LossConfig(rampup_iterations=600)
    assert fixed.rampup(250, 250) == fixed.rampup(250, 1500) == pytest.approx(math.exp(-5 * (1 - 250 / 600) ** 2))
    assert fixed.rampup(600, 250) == 1.0
    by_fraction = LossConfig(rampup_fraction=0.4)
    assert by_fraction.rampup(100, 250) == 1.0 and by_fraction.rampup(100, 1500) < 0.1
    with pytest.raises(LossConfigError, match="rampup_iterations"):
        LossConfig(rampup_iterations=-1)


def test_loss_config_switches():
    cfg = LossConfig()
    assert (cfg.dpr, cfg.pcbc, cfg.region, cfg.instance) == (1.0, 0.5, 0.1, 0.1)
    off = cfg.disable(["dpr", " Instance"])
    assert off.enabled_terms() == ("pcbc", "region")
    assert off.weight("dpr") == 0.0 and off.weight("pcbc") == 0.5
    assert cfg.enabled_terms() == ("dpr", "pcbc", "region", "instance")
    assert cfg.disable("region, pcbc").enabled_terms() == ("dpr", "instance")
    with pytest.raises(LossConfigError, match="Unknown loss term"):
        cfg.disable(["dice"])
    with pytest.raises(LossConfigError):
        LossConfig(pcbc_mode="greedy")
