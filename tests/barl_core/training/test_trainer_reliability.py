"""Trainer reliability: resource hygiene across start/cancel cycles (out of memory: test_oom.py)."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from barl_core.cli.main import main as cli_main
from barl_core.runtime.cancel import CancelToken
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.run import train


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
def test_ctrl_c_in_the_cli_stops_with_a_checkpoint_and_releases_everything(dataset, tmp_path, cli_train_args):
    args = cli_train_args(dataset, 200, "--checkpoint-every", "0")
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
