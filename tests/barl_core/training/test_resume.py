"""Resuming a run (barl_core.training.resume, train(resume=...)): on to a larger iteration count."""

from __future__ import annotations

import pytest

from barl_core.cli.main import main as cli_main
from barl_core.errors import TrainingError
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.run import train


@pytest.fixture
def finished_run(dataset, make_cfg, tmp_path):
    cfg = make_cfg(iterations=2, patch_size=(16, 16, 16))
    result = train(cfg, dataset, None, tmp_path / "run")
    assert result.status == "completed" and result.iterations_done == 2
    return cfg, tmp_path / "run"


def test_a_finished_run_continues_to_more_iterations_with_the_schedule_recomputed(dataset, finished_run):
    cfg, run = finished_run
    resumed = train(cfg, dataset, None, run, resume=True, resume_to=4)
    assert resumed.status == "completed" and resumed.iterations_done == 4
    assert [r["iteration"] for r in resumed.history] == [1, 2, 3, 4]
    # iteration 3 (index 2) runs at the poly rate of a 4-iteration schedule, not at 0
    assert resumed.history[2]["lr"] == pytest.approx(cfg.lr * (1 - 2 / 4) ** cfg.poly_power)
    ckpt = load_checkpoint(resumed.model_path)
    assert ckpt["iteration"] == 4 and ckpt["total_iterations"] == 4 and ckpt["config"]["iterations"] == 4


def test_resume_to_fewer_iterations_than_done_is_refused(dataset, finished_run):
    cfg, run = finished_run
    with pytest.raises(TrainingError, match="already at iteration 2"):
        train(cfg, dataset, None, run, resume=True, resume_to=1)
    with pytest.raises(TrainingError, match="use it with resume"):
        train(cfg, dataset, None, run, resume_to=4)


def test_cli_resume_iterations_continues_the_run(dataset, finished_run, cli_train_args, capsys):
    _, run = finished_run
    args = cli_train_args(dataset, 1, "--out", str(run), "--resume")
    assert cli_main(args) == 2 and "already at iteration 2" in capsys.readouterr().err
    assert load_checkpoint(run / "model.pt")["iteration"] == 2  # refused before any work
    assert cli_main(cli_train_args(dataset, 3, "--out", str(run), "--resume")) == 0
    assert "trained 3 iterations" in capsys.readouterr().out
    assert load_checkpoint(run / "model.pt")["iteration"] == 3
