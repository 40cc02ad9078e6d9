"""Trainer reliability: out-of-memory retries and resource hygiene across start/cancel cycles."""

from __future__ import annotations

import functools
import gc
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from barl_core.cli.main import main as cli_main
from barl_core.data.dataset import load_dataset
from barl_core.errors import TrainingError
from barl_core.runtime.cancel import CancelToken
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.distributed import DistContext
from barl_core.training.methods import SupervisedMethod
from barl_core.training.trainer import Trainer, prepare_training_data, train


@pytest.fixture(scope="module")
def dataset(tiny_phantom_dataset):
    return tiny_phantom_dataset("reliability", shape=(32, 32, 32))


@pytest.fixture(scope="module")
def make_cfg(tiny_config):
    """Factory: supervised 32^3 runs with batches of 2, so that an out-of-memory retry can halve them."""
    return functools.partial(
        tiny_config,
        method="supervised",
        iterations=3,
        patch_size=(32, 32, 32),
        batch_labeled=2,
        batch_unlabeled=2,
    )


def _cli_train(dataset: Path, iterations: int, *extra: str) -> list[str]:
    """``barl train`` arguments of a small supervised CPU run on ``dataset``."""
    return [
        "train",
        "--images",
        str(dataset),
        "--method",
        "supervised",
        "--iterations",
        str(iterations),
        "--patch",
        "16",
        "16",
        "16",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


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
    dataset, tmp_path, monkeypatch, capsys, make_cfg
):
    fake = _FakeOOM(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory."), times=10**6)
    with pytest.raises(TrainingError, match=r"even with patch \(16, 16, 16\) and batch 1:"):
        train(make_cfg(), dataset, None, tmp_path / "run")
    # batch first (2 -> 1), then patch (32 -> 16), then give up: three attempts in all
    assert fake.shapes == [(2, 1, 32, 32, 32), (1, 1, 32, 32, 32), (1, 1, 16, 16, 16)]
    # through the CLI: one clear line and exit code 2, no traceback
    fake.shapes.clear()
    code = cli_main(_cli_train(dataset, 2, "--out", str(tmp_path / "cli"), "--batch-labeled", "1"))
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


# --------------------------------------------------------------------------- hygiene
def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def _train_and_cancel_in_a_thread(dataset, run_dir: Path, make_cfg) -> str:
    token = CancelToken()
    out = {}

    def on_progress(p):
        if p.iteration >= 1:
            token.cancel()

    def job():
        out["result"] = train(
            make_cfg(iterations=50, patch_size=(16, 16, 16)),
            dataset,
            None,
            run_dir,
            callback=on_progress,
            cancel=token,
        )

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    return out["result"].status


@needs_proc
def test_start_and_cancel_repeatedly_returns_threads_and_files_to_baseline(
    dataset, tmp_path, make_cfg
):
    assert (
        _train_and_cancel_in_a_thread(dataset, tmp_path / "warm", make_cfg) == "cancelled"
    )  # lazy imports
    gc.collect()
    threads, fds = threading.active_count(), _open_fds()
    for i in range(4):
        assert _train_and_cancel_in_a_thread(dataset, tmp_path / f"r{i}", make_cfg) == "cancelled"
    gc.collect()
    assert threading.active_count() == threads
    assert _open_fds() <= fds


@needs_proc
def test_ctrl_c_in_the_cli_stops_with_a_checkpoint_and_releases_everything(dataset, tmp_path):
    args = _cli_train(dataset, 200, "--checkpoint-every", "0")
    before_handler = signal.getsignal(signal.SIGINT)

    def run_once(out: Path) -> int:
        def press_ctrl_c():  # once training is under way (the handler is installed by then)
            deadline = time.monotonic() + 30
            while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        code = cli_main([*args, "--out", str(out)])
        presser.join()
        return code

    assert run_once(tmp_path / "warm") == 130
    gc.collect()
    threads, fds = threading.active_count(), _open_fds()
    for i in range(3):
        out = tmp_path / f"c{i}"
        assert run_once(out) == 130
        ckpts = list((out / "checkpoints").glob("ckpt_*.pt"))
        assert len(ckpts) == 1 and 1 <= load_checkpoint(ckpts[0])["iteration"] < 200
    gc.collect()
    assert signal.getsignal(signal.SIGINT) is before_handler
    assert threading.active_count() == threads
    assert _open_fds() <= fds
