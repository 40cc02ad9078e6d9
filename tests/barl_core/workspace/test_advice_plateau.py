"""The plateau test of the "label more or stop?" advice (recalibrated on the stored
active-learning curves, docs/benchmarks.md section 2): two gains, each small, at least
``min_slices_to_stop`` slices, the last version near the best."""

from __future__ import annotations

from barl_core.workspace.advice import AdviceConfig, advise, on_plateau


def _action(dice, first=20, cfg=None):
    curve = [(first + 4 * i, d) for i, d in enumerate(dice)]
    return advise(curve, n_annotated=curve[-1][0], has_model=True, cfg=cfg).action


def test_one_small_step_after_a_big_one_is_not_a_plateau():
    # +0.10 then +0.005: the curve is still climbing
    assert _action([0.80, 0.90, 0.905]) == "label-more"


def test_a_truly_flat_curve_stops():
    assert _action([0.88, 0.885, 0.89, 0.892]) == "export"
    assert _action([0.89, 0.90, 0.905]) == "export"


def test_one_flat_version_is_not_a_plateau():
    # the rule before the recalibration stopped here (one gain, -0.005 < 0.01): 6 of the 10
    # stored benchmark curves were flat for their first version, then rose by 0.35-0.41
    assert _action([0.86, 0.855]) == "label-more"


def test_flat_then_rising_start_does_not_stop_before_min_slices():
    # two small gains at 8, 12, 16 slices (disagreement seed 1's start: -0.002, +0.018, then
    # +0.35): the rule before stopped at round 1; now not below min_slices_to_stop
    assert _action([0.86, 0.858, 0.865], first=8) == "label-more"
    assert not on_plateau([(8, 0.86), (12, 0.858), (16, 0.865)], 16, AdviceConfig())
    # the minimum is a setting: without it the same curve is flat
    assert _action([0.86, 0.858, 0.865], first=8, cfg=AdviceConfig(min_slices_to_stop=0)) == "export"


def test_gains_within_the_noise_between_seeds_are_flat():
    # +0.015 twice: below the between-seed sd of the flat end (~0.018); the rule before
    # (mean gain < 0.01) never stopped such a curve
    assert _action([0.86, 0.875, 0.89]) == "export"


def test_falling_versions_are_not_a_plateau():
    # two falls: the last is 0.03 below the best, noisy rather than flat (the rule before
    # stopped here: mean gain -0.015)
    assert _action([0.90, 0.885, 0.87]) == "label-more"


def test_a_dip_after_a_big_step_is_not_a_plateau():
    assert _action([0.78, 0.90, 0.88]) == "label-more"


def test_a_curve_flat_below_the_target_says_stop_not_label_more():
    """The active-learning benchmark from a working round-0 model (docs 2a): flat at ~0.83 from
    the first version, under the 0.85 target; "label more" forever would be late."""
    adv = advise([(24, 0.818), (28, 0.823), (32, 0.825)], n_annotated=32, has_model=True)
    assert adv.action == "stop" and "below the target 0.85" in adv.message
    # still rising: label more; humans still correcting a lot: label more
    assert _action([0.70, 0.75, 0.80], first=24) == "label-more"
    busy = advise([(24, 0.818), (28, 0.823), (32, 0.825)], n_annotated=32, has_model=True,
                  correction_dice=[0.5, 0.6])
    assert busy.action == "label-more"
