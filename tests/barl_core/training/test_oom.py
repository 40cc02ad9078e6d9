"""Out-of-memory back-off (barl_core.training.oom): halve the batch, then the patch, then a clear error."""

from __future__ import annotations

import pytest
import torch

from barl_core.cli.main import main as cli_main
from barl_core.data.dataset import load_dataset
from barl_core.errors import TrainingError
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.distributed import DistContext
from barl_core.training.methods import SupervisedMethod
from barl_core.training.oom import MIN_PATCH_SIDE, smaller_setting
from barl_core.training.prepare import prepare_training_data
from barl_core.training.run import train
from barl_core.training.trainer import Trainer


def test_smaller_setting_halves_batches_first_then_the_patch_down_to_the_floor(make_cfg):
    cfg = make_cfg(patch_size=(64, 64, 32))
    assert smaller_setting(cfg, uses_unlabelled=True) == {"batch_labeled": 1, "batch_unlabeled": 1}
    one = make_cfg(patch_size=(64, 64, 32), batch_labeled=1, batch_unlabeled=1)
    assert smaller_setting(one, uses_unlabelled=True) == {"patch_size": (32, 32, MIN_PATCH_SIDE)}
    floor = make_cfg(patch_size=(MIN_PATCH_SIDE,) * 3, batch_labeled=1, batch_unlabeled=1)
    assert smaller_setting(floor, uses_unlabelled=True) is None


class _FakeOOM:
    """Replaces ``SupervisedMethod.training_step``: raises ``error`` on the first ``times`` calls."""

    def __init__(self, monkeypatch, error: BaseException, times: int):
        self.original = SupervisedMethod.training_step
        self.error, self.times, self.shapes = error, times, []
        fake = self

        def step(method, images, labels, unlabelled, iteration):
            fake.shapes.append(tuple(images.shape))
            if len(fake.shapes) <= fake.times:
                raise fake.error
            return fake.original(method, images, labels, unlabelled, iteration)

        monkeypatch.setattr(SupervisedMethod, "training_step", step)


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB, other allocations: 1 GB)"),
    ],
    ids=["cuda", "mps"],
)
def test_one_out_of_memory_halves_the_batch_and_goes_on(
    dataset, tmp_path, monkeypatch, error, make_cfg
):
    fake = _FakeOOM(monkeypatch, error, times=1)
    seen = []
    result = train(make_cfg(), dataset, None, tmp_path / "run", callback=seen.append)
    assert result.status == "completed" and result.iterations_done == 3
    # the failed iteration was retried at half the batch, then training went on with it
    assert fake.shapes == [(2, 1, 32, 32, 32)] + [(1, 1, 32, 32, 32)] * 3
    notices = [p.message for p in seen if p.message]
    assert len(notices) == 1 and "out of" in notices[0] and "iteration 1" in notices[0]
    assert "batch 1" in notices[0] and "patch (32, 32, 32)" in notices[0]
    assert [p.iteration for p in seen if not p.message] == [1, 2, 3]
    ckpt = load_checkpoint(result.model_path)  # the checkpoint records what actually ran
    assert ckpt["config"]["batch_labeled"] == 1 and ckpt["iteration"] == 3


def test_repeated_out_of_memory_shrinks_to_the_floor_then_fails_clearly(
    dataset, tmp_path, monkeypatch, capsys, make_cfg, cli_train_args
):
    fake = _FakeOOM(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory."), times=10**6)
    with pytest.raises(TrainingError, match=r"even with patch \(16, 16, 16\) and batch 1:"):
        train(make_cfg(), dataset, None, tmp_path / "run")
    # batch first (2 -> 1), then patch (32 -> 16), then give up: three attempts in all
    assert fake.shapes == [(2, 1, 32, 32, 32), (1, 1, 32, 32, 32), (1, 1, 16, 16, 16)]
    # through the CLI: one clear line and exit code 2, no traceback
    fake.shapes.clear()
    code = cli_main(cli_train_args(dataset, 2, "--out", str(tmp_path / "cli"), "--batch-labeled", "1"))
    err = capsys.readouterr().err
    assert (
        code == 2 and "barl: error: out of CPU memory even with" in err and "Traceback" not in err
    )


def test_out_of_memory_under_torchrun_stops_without_retry(dataset, tmp_path, monkeypatch, make_cfg):
    _FakeOOM(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory."), times=1)
    cfg = make_cfg()
    volumes, _, names = prepare_training_data(load_dataset(dataset), cfg)
    trainer = Trainer(cfg.with_classes(names), volumes, tmp_path / "run")
    trainer.initialize()
    trainer.dist = DistContext(rank=1, world_size=2, backend="gloo")  # ranks must stay in step
    with pytest.raises(TrainingError, match="rank 1 ran out of CPU memory"):
        trainer.train_step(0)
