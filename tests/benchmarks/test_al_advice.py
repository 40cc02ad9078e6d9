"""The "label more or stop?" advice replayed along stored active-learning curves."""

from __future__ import annotations


def _runs(key, dice):
    return {key: {"strategy": key.split("/")[0], "curve": [{"n_slices": 8 + 4 * i, "mean_fg_dice": d}
                                                          for i, d in enumerate(dice)]}}


def test_advice_along_curves_finds_the_flat_round_and_the_stop():
    from barl_core.workspace.advice import AdviceConfig
    from benchmarks.al_advice import advice_along_curves

    dice = [0.5, 0.7, 0.8, 0.9, 0.905, 0.906]
    v = advice_along_curves(_runs("a/seed0", dice), AdviceConfig(target_dice=0.85))["a/seed0"]
    assert v["flat_round"] == 3  # 0.9 is within 0.02 of the best, 0.8 is not
    # first round at the target with two small gains and >= 20 slices: round 5 (28 slices;
    # round 4 follows +0.1 with +0.005)
    assert v["stop_round"] == 5
    assert v["actions"][:5] == ["label-more"] * 5
    assert v["plateau_stop_round"] == 5 and not v["plateau_stop_early"] and not v["plateau_stop_late"]
    assert v["old_plateau_stop_round"] == 5  # the mean of two gains, 0.003
    # two falling versions below the target: the rule before stopped there (mean gain
    # -0.015), early, since the curve rises on; now a fall from the best is not flat
    v = advice_along_curves(_runs("b/seed0", [0.5, 0.6, 0.58, 0.57, 0.8]))["b/seed0"]
    assert v["stop_round"] is None and v["plateau_stop_round"] is None
    assert v["old_plateau_stop_round"] == 3 and v["old_plateau_stop_early"]
    assert v["flat_round"] == 4 == v["last_round"]


def test_advice_along_curves_flat_then_rising_does_not_stop_at_round_1():
    from benchmarks.al_advice import advice_along_curves, render_advice

    # flat for a version, then rising (the shape of 6 of the 10 stored runs)
    v = advice_along_curves(_runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812]))["c/seed0"]
    assert v["old_plateau_stop_round"] == 1 and v["old_plateau_stop_early"]
    assert v["flat_round"] == 3 and v["plateau_stop_round"] == 5 and not v["plateau_stop_early"]
    # a curve that flattened at round 1 and wobbles by more than 0.02: never stopped, late
    v = advice_along_curves(_runs("d/seed0", [0.5, 0.8, 0.77, 0.81, 0.78, 0.80]))["d/seed0"]
    assert v["flat_round"] == 1 and v["plateau_stop_round"] is None and v["plateau_stop_late"]
    table = render_advice(advice_along_curves(_runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812])))
    assert "| 5 " in table and "1 (early)" in table


def test_advice_only_replays_a_results_file_without_training(tmp_path):
    import json

    from benchmarks.active_learning import main

    path = tmp_path / "al.json"
    path.write_text(json.dumps({"runs": _runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812]), "summary": {}}))
    assert main(["--advice-only", "--out", str(path)]) == 0
    advice = json.loads(path.read_text())["summary"]["advice"]["c/seed0"]
    assert advice["plateau_stop_round"] == 5 and advice["old_plateau_stop_round"] == 1
