"""The time budget as a deadline (issue 11): a run stops in time even when the machine slows down.

The trainer reads its clock through its module's ``time``; these tests replace that with a fake
clock that a training step advances by a fixed number of seconds (and a validation by another),
so the iteration a run stops at is known exactly and nothing depends on real time.
"""

from __future__ import annotations

import json
import time
import types

import pytest
import torch

import barl_core.training.trainer as trainer_module
from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.errors import TrainingError
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.config import TrainConfig
from barl_core.training.deadline import (
    STOP_PLATEAU,
    STOP_TIME_BUDGET,
    Deadline,
    describe_stop,
    format_seconds,
)
from barl_core.training.run import train
from barl_core.training.trainer import Trainer
from barl_core.training.validator import Validator

STEP_S = 10.0  # fake seconds per training iteration
VALIDATION_S = 5.0  # fake seconds per validation


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    return make_phantom_dataset(
        tmp_path_factory.mktemp("deadline") / "ds", 6, config=PhantomConfig(shape=(16, 24, 24)),
        labelled_cases=6, slices_per_case=3,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The trainer's clock, advanced STEP_S by each training step and VALIDATION_S by each validation."""
    fake = FakeClock()
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=fake, time=time.time))
    step, score = Trainer.train_step, Validator.score

    def slow_step(self, iteration):
        out = step(self, iteration)
        fake.now += STEP_S
        return out

    def slow_score(self, module, device):
        out = score(self, module, device)
        fake.now += VALIDATION_S
        return out

    monkeypatch.setattr(Trainer, "train_step", slow_step)
    monkeypatch.setattr(Validator, "score", slow_score)
    return fake


# ------------------------------------------------------------------ the decision
def test_deadline_keeps_room_for_the_next_iteration_and_the_final_validation():
    fake = FakeClock()
    d = Deadline(70.0, fake)
    d.start()
    fake.now += 45
    assert not d.reached([10.0], validates=True, validation_due=False, checkpoint_due=False)  # 45+10 <= 70
    d.validation_s = 5.0
    assert not d.reached([10.0], validates=True, validation_due=False, checkpoint_due=False)  # 45+10+5 = 60
    assert not d.reached([10.0], validates=True, validation_due=True, checkpoint_due=False)  # 45+5+10+5 = 65
    d.save_s = 6.0
    assert d.reached([10.0], validates=True, validation_due=True, checkpoint_due=False)  # 45+5+10+5+6 = 71
    assert not d.reached([10.0], validates=False, validation_due=False, checkpoint_due=False)  # 45+10+6 = 61
    assert not d.reached([10.0], validates=False, validation_due=False, checkpoint_due=True)  # 45+6+10+6 = 67
    fake.now += 4
    assert d.reached([10.0], validates=False, validation_due=False, checkpoint_due=True)  # 49+6+10+6 = 71
    # a slow-down counts at once: the last iteration, not the mean of the fast ones before it
    d.save_s = d.validation_s = 0.0
    fake.now -= 4
    assert d.reached([1.0, 1.0, 1.0, 30.0], validates=False, validation_due=False, checkpoint_due=False)
    assert not Deadline(None, fake).reached([1e9], validates=True, validation_due=True, checkpoint_due=True)


def test_format_and_describe_stop():
    assert format_seconds(45) == "45 s" and format_seconds(120) == "2.0 min" and format_seconds(5400) == "1.5 h"
    assert describe_stop("", 200, 200) == "after 200 iterations"
    assert describe_stop(STOP_TIME_BUDGET, 37, 215, 120) == "after 37 of 215 iterations: stopped at the time limit (2.0 min)"
    assert "validation Dice" in describe_stop(STOP_PLATEAU, 40, 200)


def test_max_seconds_is_validated_and_round_trips(tiny_config):
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2m"):
        with pytest.raises(TrainingError, match="max_seconds"):
            tiny_config(max_seconds=bad)
    cfg = tiny_config(max_seconds=120.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and tiny_config().max_seconds is None


# ------------------------------------------------------------------ the trainer honours it
def test_a_run_stops_at_its_time_limit_validated_with_the_best_model(labelled_dataset, tmp_path, tiny_config, clock):
    # 10 s per iteration, 5 s per validation (every 2), limit 70 s. After iteration 4 (45 s
    # spent): its validation + one iteration + a final validation = 65 s fits. After iteration
    # 5 (60 s): 60 + 10 + 5 = 75 does not: stop there, validate once more (65 s) and save.
    cfg = tiny_config(method="supervised", iterations=50, max_seconds=70.0,
                      validation={"every": 2, "patience": 0, "min_labelled_cases": 5})
    seen = []
    start = clock.now
    result = train(cfg, labelled_dataset, None, tmp_path / "run", callback=seen.append)
    assert result.status == "completed" and result.iterations_done == 5
    assert result.stop_reason == STOP_TIME_BUDGET and result.stopped_early
    assert clock.now - start <= 70.0  # on time, final validation included
    assert result.summary == "after 5 of 50 iterations: stopped at the time limit (70 s)"
    assert [r["iteration"] for r in result.history if "val_dice" in r] == [2, 4, 5]  # the final validation
    assert any("time limit of 70 s reached" in p.message for p in seen)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iteration"] == 5 and rows[-1]["stop_reason"] == STOP_TIME_BUDGET
    assert all("stop_reason" not in r for r in rows[:-1])
    final, best = load_checkpoint(result.model_path), load_checkpoint(tmp_path / "run" / "best.pt")
    assert final["iteration"] == 5 and final["best_iteration"] == result.best_iteration == best["iteration"]
    for k, v in best["model_state"].items():  # model.pt holds the best validated weights
        assert torch.equal(final["model_state"][k], v)


def test_a_run_without_a_limit_runs_all_its_iterations(labelled_dataset, tmp_path, tiny_config, clock):
    result = train(tiny_config(method="supervised", iterations=6), labelled_dataset, None, tmp_path / "run")
    assert result.iterations_done == 6 and result.stop_reason == "" and not result.stopped_early
    assert result.summary == "after 6 iterations"
    assert clock.now >= 1000.0 + 6 * STEP_S  # the fake clock ran: a limit would have been seen


def test_a_run_with_a_limit_it_does_not_reach_runs_all_its_iterations(labelled_dataset, tmp_path, tiny_config, clock):
    result = train(tiny_config(method="supervised", iterations=3, max_seconds=1e6), labelled_dataset, None,
                   tmp_path / "run")
    assert result.iterations_done == 3 and result.stop_reason == ""


def test_a_resumed_run_counts_its_time_limit_from_the_resume(labelled_dataset, tmp_path, tiny_config, clock):
    # 10 s per iteration, no validation, limit 35 s: 3 iterations (after the 3rd, 30 + 10 > 35)
    cfg = tiny_config(method="supervised", iterations=20, max_seconds=35.0)
    first = train(cfg, labelled_dataset, None, tmp_path / "run")
    assert first.iterations_done == 3 and first.stop_reason == STOP_TIME_BUDGET
    clock.now += 3600  # an hour later: a deadline counted from the first start is long spent
    seen = []
    resumed = train(cfg, labelled_dataset, None, tmp_path / "run", resume=True, callback=seen.append)
    assert resumed.iterations_done == 6 and resumed.stop_reason == STOP_TIME_BUDGET  # 3 more: a fresh 35 s
    assert any("counts from now" in p.message for p in seen)  # said, not silent
    # a limit given with the resume replaces the saved one: 15 s is one iteration
    again = train(replace_limit(cfg, 15.0), labelled_dataset, None, tmp_path / "run", resume=True)
    assert again.iterations_done == 7 and load_checkpoint(again.model_path)["config"]["max_seconds"] == 15.0


def replace_limit(cfg: TrainConfig, seconds: float) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, max_seconds=seconds)


def test_the_patience_stop_reports_its_reason(labelled_dataset, tmp_path, tiny_config):
    cfg = tiny_config(method="supervised", iterations=50,
                      validation={"every": 2, "patience": 1, "min_delta": 1.0, "min_labelled_cases": 5})
    result = train(cfg, labelled_dataset, None, tmp_path / "run")
    assert result.stop_reason == STOP_PLATEAU and result.iterations_done == 4
    assert result.history[-1]["stop_reason"] == STOP_PLATEAU and "no longer improved" in result.summary


# ------------------------------------------------------------------ the plan sets it
def test_the_plan_turns_what_is_left_of_the_budget_into_the_limit(labelled_dataset, tiny_config):
    from barl_core.data.dataset import load_dataset
    from barl_core.training.planner import PlanRequest, make_plan
    from barl_core.training.prepare import prepare_training_data

    cfg = tiny_config(method="supervised")
    volumes, _, names = prepare_training_data(load_dataset(labelled_dataset), cfg)
    cfg = cfg.with_classes(names)
    planned, plan = make_plan(cfg, volumes, PlanRequest(time_budget_s=3600, max_iterations=5, timing_iterations=1))
    assert 0 < planned.max_seconds < 3600 and plan.max_seconds == planned.max_seconds  # planning time spent
    assert "deadline: training stops after" in plan.describe() and plan.to_dict()["max_seconds"] == plan.max_seconds
    unbounded, plan2 = make_plan(cfg, volumes, PlanRequest(max_iterations=5, timing_iterations=1))
    assert unbounded.max_seconds is None and "deadline" not in plan2.describe()


def test_cli_prints_the_deadline_and_explicit_iterations_have_none(labelled_dataset, tmp_path, capsys):
    from barl_core.cli.main import main

    common = ["--images", str(labelled_dataset), "--method", "supervised", "--device", "cpu",
              "--threads", "1", "--quiet", "--validate-every", "0"]
    assert main(["train", *common, "--out", str(tmp_path / "a"), "--iterations", "2", "--patch", "16", "16", "16"]) == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["max_seconds"] is None
    assert main(["train", *common, "--out", str(tmp_path / "b"), "--time-budget", "1h", "--max-iterations", "2"]) == 0
    text = capsys.readouterr().out
    assert "deadline: training stops after" in text
    assert 0 < json.loads((tmp_path / "b" / "config.json").read_text())["max_seconds"] < 3600
