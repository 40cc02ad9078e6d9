"""The plateau test of the "label more or stop?" advice: two steps, not one noisy version."""

from __future__ import annotations

from barl_core.workspace.advice import advise


def _action(dice):
    curve = [(8 + 4 * i, d) for i, d in enumerate(dice)]
    return advise(curve, n_annotated=curve[-1][0], has_model=True).action


def test_one_small_step_after_a_big_one_is_not_a_plateau():
    # +0.10 then +0.005: the mean gain over two versions is 0.05, the curve is still climbing
    assert _action([0.80, 0.90, 0.905]) == "label-more"


def test_two_small_steps_are_a_plateau():
    assert _action([0.89, 0.90, 0.905]) == "export"


def test_a_dip_after_a_big_step_is_not_a_plateau():
    assert _action([0.78, 0.90, 0.88]) == "label-more"
