"""Issue 11 engine pieces: cheap class decisions, phase timing, validation during training."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.data.sampler import TrainingVolume
from barl_core.errors import TrainingError
from barl_core.losses.label_space import dpr_loss, hard_labels, pcbc_loss
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.profiling import PhaseTimer
from barl_core.training.run import train
from barl_core.training.validator import (
    ValidationConfig,
    Validator,
    annotated_dice,
    overreach_fraction,
    split_validation,
)


# ------------------------------------------------------------------ cheap decisions
def test_hard_labels_equal_argmax_including_ties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 5, 6, 7, generator=g)
    assert torch.equal(hard_labels(x), x.argmax(1))
    tied = torch.zeros(1, 3, 2, 2, 2)
    tied[:, 1:] = 1.0  # classes 1 and 2 tie: the first maximal one wins, as with argmax
    assert torch.equal(hard_labels(tied), tied.argmax(1))
    assert not hard_labels(x.requires_grad_()).requires_grad


def test_shared_pseudo_labels_give_the_same_losses():
    g = torch.Generator().manual_seed(1)
    la = [torch.randn(2, 3, 4, 4, 4, generator=g, requires_grad=True) for _ in range(3)]
    lb = [torch.randn(2, 3, 4, 4, 4, generator=g, requires_grad=True) for _ in range(3)]
    ha, hb = [hard_labels(t) for t in la], [hard_labels(t) for t in lb]
    assert torch.allclose(dpr_loss(la, lb), dpr_loss(la, lb, 0.0, ha, hb))
    assert torch.allclose(pcbc_loss(la, lb, 0.01), pcbc_loss(la, lb, 0.01, "disagreement", ha, hb))
    # swapped pseudo-labels must change DPR: the argument is used, not recomputed
    assert not torch.allclose(dpr_loss(la, lb), dpr_loss(la, lb, 0.0, hb, ha))


def test_phase_timer_counts_only_when_enabled():
    off = PhaseTimer()
    with off.phase("a"):
        pass
    assert off.totals == {}
    on = PhaseTimer(enabled=True)
    for _ in range(3):
        with on.phase("a"):
            pass
    with on.phase("b"):
        pass
    assert on.counts == {"a": 3, "b": 1} and all(v >= 0 for v in on.totals.values())
    assert set(on.mean_per(3)) == {"a", "b"}
    on.reset()
    assert on.totals == {} and on.counts == {}


# ------------------------------------------------------------------ validation pieces
def _vol(name: str, labelled: bool, side: int = 4) -> TrainingVolume:
    lab = np.full((side,) * 3, 255, np.uint8)
    if labelled:
        lab[1] = 0
        lab[1, 1:3, 1:3] = 1
    return TrainingVolume(np.zeros((side,) * 3, np.float32), lab if labelled else None, name)


def test_split_validation_is_fixed_and_needs_enough_labelled_cases():
    vols = [_vol(f"c{i}", labelled=i < 10) for i in range(14)]
    cfg = ValidationConfig(every=10, fraction=0.2)
    train_a, val_a = split_validation(vols, cfg)
    train_b, val_b = split_validation(list(reversed(vols)), cfg)
    assert len(val_a) == 2 and {v.name for v in val_a} == {v.name for v in val_b}  # order-independent
    assert all(v.labels is not None for v in val_a)
    assert {v.name for v in train_a} | {v.name for v in val_a} == {v.name for v in vols}
    assert not {v.name for v in train_a} & {v.name for v in val_a}
    few = [_vol(f"c{i}", labelled=i < 3) for i in range(8)]
    assert split_validation(few, cfg) == (few, [])  # 3 < min_labelled_cases: nothing held out
    assert split_validation(vols, ValidationConfig(every=0))[1] == []
    with pytest.raises(TrainingError):
        ValidationConfig(fraction=1.5)


def test_annotated_dice_ignores_unannotated_voxels():
    truth = np.full((2, 4, 4), 255, np.uint8)
    truth[0] = 0
    truth[0, :2, :2] = 1
    pred = np.zeros((2, 4, 4), np.uint8)
    pred[0, :2, :2] = 1
    pred[1] = 1  # all wrong, but on unannotated voxels
    assert annotated_dice(pred, truth, 3)[0] == pytest.approx(1.0)
    assert np.isnan(annotated_dice(pred, truth, 3)[1])  # class 2 in neither
    pred[0, 0, 0] = 0
    assert annotated_dice(pred, truth, 3)[0] == pytest.approx(2 * 3 / 7)


def test_overreach_sees_confident_errors_off_the_annotated_slices():
    """Class 1 annotated on slice 4 (4 voxels); the prediction also fills slices 0-1 whole."""
    labels = np.full((8, 4, 4), 255, np.uint8)
    labels[4] = 0
    labels[4, :2, :2] = 1
    pred = np.zeros((8, 4, 4), np.uint8)
    pred[3:6, :2, :2] = 1  # the structure, on and off the annotated slice: plausible sizes
    assert overreach_fraction(pred, labels, 3)[0] == 0.0
    assert np.isnan(overreach_fraction(pred, labels, 3)[1])  # class 2 never annotated: no reference
    pred[0:2] = 1  # 16 voxels a slice, 4x the annotated cross-section, where nobody annotated
    assert overreach_fraction(pred, labels, 3)[0] == pytest.approx(32 / (32 + 12))
    # the Dice on the annotated slice does not move: sparse validation cannot see this error
    assert annotated_dice(pred, labels, 3)[0] == pytest.approx(1.0)


def test_validator_scores_a_network_and_restores_train_mode():
    from barl_core.networks.unet import BiBranchNet, NetworkConfig

    net = BiBranchNet(NetworkConfig(num_classes=2, base_channels=4, proj_dim=8)).train()
    val = Validator([_vol("a", True, 16), _vol("b", False, 16)], (16, 16, 16), num_classes=2)
    assert val.names == ["a"]  # unlabelled volumes are not validation volumes
    scores = val.score(net, "cpu")
    assert 0.0 <= scores["dice"] <= 1.0 and {"dice", "dice_1"} <= set(scores) <= {"dice", "dice_1", "overreach"}
    assert 0.0 <= scores.get("overreach", 0.0) <= 1.0
    assert net.training
    with pytest.raises(TrainingError):
        Validator([_vol("b", False)], (8, 8, 8), num_classes=2)


# ------------------------------------------------------------------ validation in training
@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    return make_phantom_dataset(
        tmp_path_factory.mktemp("val") / "ds", 6, config=PhantomConfig(shape=(16, 24, 24)),
        labelled_cases=6, slices_per_case=3,
    )


def test_training_validates_keeps_best_and_stops_on_plateau(labelled_dataset, tmp_path, tiny_config):
    # min_delta 1.0 can never be beaten: the first validation is the best, the second one
    # is a plateau, and patience 1 stops the run there, long before the 50 iterations.
    cfg = tiny_config(method="supervised", iterations=50,
                      validation={"every": 2, "patience": 1, "min_delta": 1.0, "min_labelled_cases": 5})
    rows = []
    result = train(cfg, labelled_dataset, None, tmp_path / "run", callback=rows.append)
    assert result.stopped_early and result.iterations_done == 4
    assert result.best_iteration == 2 and 0.0 <= result.best_score <= 1.0
    validated = [r for r in result.history if "val_dice" in r]
    assert [r["iteration"] for r in validated] == [2, 4]
    assert any(p.validation for p in rows) and any("stopping" in p.message for p in rows)
    final, best = load_checkpoint(result.model_path), load_checkpoint(tmp_path / "run" / "best.pt")
    assert final["best_iteration"] == 2 and best["iteration"] == 2
    for k, v in best["model_state"].items():  # model.pt holds the best weights
        assert torch.equal(final["model_state"][k], v)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"val_dice"' in line for line in lines) == 2


def test_training_without_patience_runs_its_budget(labelled_dataset, tmp_path, tiny_config):
    cfg = tiny_config(method="supervised", iterations=4, validation={"every": 2, "min_labelled_cases": 5})
    result = train(cfg, labelled_dataset, None, tmp_path / "run")
    assert not result.stopped_early and result.iterations_done == 4
    assert result.best_iteration in (2, 4)


# ------------------------------------------------------------------ the plan
def test_parse_duration():
    from barl_core.training.planner import parse_duration

    assert parse_duration("2m") == 120 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    assert parse_duration("45") == 45
    for bad in ("", "abc", "-2m", "0"):
        with pytest.raises(TrainingError):
            parse_duration(bad)


def test_patch_from_median_shape_and_iterations_from_budget():
    from barl_core.training.planner import (
        DatasetFingerprint,
        fingerprint,
        plan_iterations,
        plan_patch,
    )

    vols = [_vol("a", True, 4), _vol("b", False, 4), _vol("c", True, 4)]
    fp = fingerprint(vols)
    assert fp.n_cases == 3 and fp.n_labelled == 2 and fp.median_shape == (4, 4, 4)
    assert fp.annotated_fraction == pytest.approx(16 / 64)
    hippo = DatasetFingerprint(208, 208, (36, 50, 35), 1.0)
    assert plan_patch(hippo, 8, 48 * 64 * 48) == (32, 48, 32)  # the median volume holds it unpadded
    assert plan_patch(DatasetFingerprint(3, 1, (5, 6, 7), 1.0), 8, 48 * 64 * 48) == (8, 8, 8)  # never below the divisor
    big = DatasetFingerprint(10, 2, (200, 400, 400), 0.01)
    patch = plan_patch(big, 8, 48 * 64 * 48)
    assert all(p % 8 == 0 for p in patch) and np.prod(patch) <= 48 * 64 * 48
    assert max(patch) - min(patch) <= 8  # the longest side shrinks first, so the sides end up even
    assert plan_iterations(0.5, 100.0, 10_000) == 170  # 85% of the budget
    assert plan_iterations(0.5, 100.0, 50) == 50 and plan_iterations(0.5, None, 3000) == 3000


def test_make_plan_keeps_what_the_user_fixed(labelled_dataset, tiny_config):
    from barl_core.data.dataset import load_dataset
    from barl_core.training.planner import PlanRequest, make_plan
    from barl_core.training.prepare import prepare_training_data

    cfg = tiny_config(method="supervised", iterations=7)
    volumes, _, names = prepare_training_data(load_dataset(labelled_dataset), cfg)
    cfg = cfg.with_classes(names)
    messages = []
    planned, plan = make_plan(cfg, volumes, PlanRequest(time_budget_s=3600, max_iterations=40,
                                                        timing_iterations=1, report=messages.append))
    assert planned.patch_size == (16, 24, 24) == plan.patch_size  # the phantoms' shape, whole
    assert planned.iterations == plan.iterations == 40  # the cap: an hour fits far more
    assert planned.validation.every == 25 and planned.validation.patience == 5
    assert plan.seconds_per_iteration > 0 and messages and "patch 16x24x24" in plan.describe()
    kept, plan2 = make_plan(cfg, volumes, PlanRequest(time_budget_s=3600, timing_iterations=1,
                                                      fixed=frozenset({"patch_size", "iterations"})))
    assert kept.patch_size == (16, 16, 16) and kept.iterations == 7 and plan2.iterations == 7
    # a budget too small for a useful run: the patch is shrunk (and the plan says so)
    small, plan3 = make_plan(cfg, volumes, PlanRequest(time_budget_s=1e-3, timing_iterations=1))
    assert np.prod(small.patch_size) < 16 * 24 * 24 and small.iterations == 1
    assert any("halved" in n for n in plan3.notes) and any("under-trained" in n for n in plan3.notes)


def test_cli_plans_trains_validates_without_an_iteration_count(labelled_dataset, tmp_path, capsys):
    from barl_core.cli.main import main

    out = tmp_path / "run"
    code = main(["train", "--images", str(labelled_dataset), "--out", str(out), "--method", "supervised",
                 "--device", "cpu", "--max-iterations", "4", "--validate-every", "2", "--threads", "1", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "plan:" in text and "patch 16x24x24" in text and "validation every 2 iterations" in text
    assert "best validation Dice" in text
    config = json.loads((out / "config.json").read_text())
    assert config["iterations"] == 4 and config["patch_size"] == [16, 24, 24] and config["num_threads"] == 1
    assert (out / "best.pt").is_file()


def test_disagreement_fraction_is_logged_and_bounded(labelled_dataset, tmp_path, tiny_config):
    seen = []
    train(tiny_config(method="barl", iterations=2), labelled_dataset, None, tmp_path / "b", callback=seen.append)
    assert all(0.0 <= p.losses["disagree"] <= 1.0 for p in seen)
    seen.clear()
    train(tiny_config(method="barl", iterations=1, disable="dpr,pcbc"), labelled_dataset, None, tmp_path / "c",
          callback=seen.append)
    assert "disagree" not in seen[0].losses  # no class decisions taken, none reported


def test_pseudo_label_quality_is_scored_per_branch_on_unannotated_voxels(labelled_dataset, tmp_path, tiny_config):
    from barl_core.data.dataset import load_dataset

    cases = load_dataset(labelled_dataset)
    truth_dir = labelled_dataset / "groundtruth"
    from barl_core.io.volume import read_volume

    diag = []
    for c in cases[:2]:
        truth = read_volume(truth_dir / f"{c.name}.nii.gz").array.astype(np.uint8)
        unannotated = np.where(c.labels == 255, truth, 255).astype(np.uint8)
        diag.append(replace(c, labels=unannotated))
    cfg = tiny_config(method="barl", iterations=2, validation={"every": 2, "min_labelled_cases": 5})
    result = train(cfg, labelled_dataset, None, tmp_path / "run", diagnostic_cases=diag)
    (row,) = [r for r in result.history if "val_dice" in r]
    assert 0.0 <= row["val_pseudo_dice_a"] <= 1.0 and 0.0 <= row["val_pseudo_dice_b"] <= 1.0
