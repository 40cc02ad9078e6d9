"""Training and prediction in a spawned child process: progress, results, cancel, errors, hygiene."""

from __future__ import annotations

import os
import threading
import time

import pytest

from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.runtime.jobs import PredictJob, TrainJob
from barl_core.runtime.protocol import FINAL_KINDS, ProgressUpdate
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.config import preset

TIMEOUT = 120


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    return make_phantom_dataset(
        root / "ds", 2, config=PhantomConfig(shape=(24, 24, 24)), labelled_cases=1, slices_per_case=2
    )


def _cfg(iterations=3, **kw):
    return preset(
        "quick", iterations=iterations, patch_size=(16, 16, 16), batch_labeled=1, batch_unlabeled=1,
        network={"base_channels": 4, "proj_dim": 8}, device="cpu", checkpoint_every=0, num_threads=1, **kw,
    )


def _run_to_end(handle, timeout=TIMEOUT) -> list[ProgressUpdate]:
    final = handle.wait(timeout)
    assert final is not None, "the job did not end in time"
    updates = handle.poll()
    assert updates and updates[-1] is final
    assert sum(u.kind in FINAL_KINDS for u in updates) == 1
    assert not handle.is_running()
    return updates


def _open_fds() -> int | None:
    try:
        return len(os.listdir(f"/proc/{os.getpid()}/fd"))
    except OSError:
        return None


def test_train_job_reports_progress_and_writes_model_then_predict_job(dataset, tmp_path):
    handle = TrainJob.start(_cfg(3), dataset / "imagesTr", dataset / "labelsTr", tmp_path / "run")
    updates = _run_to_end(handle)
    progress = [u for u in updates if u.kind == "progress"]
    assert [u.iteration for u in progress] == [1, 2, 3]
    assert all(u.total == 3 and "loss" in u.losses and u.its_per_s > 0 for u in progress)
    done = updates[-1]
    assert done.kind == "done" and done.result_path == str(tmp_path / "run" / "model.pt")
    assert load_checkpoint(done.result_path)["iteration"] == 3
    assert handle.exitcode == 0

    # the model predicts in a child too; outputs land where the GUI looks for them
    images = sorted((dataset / "imagesTr").glob("*.nii.gz"))
    handle = PredictJob.start(done.result_path, images, tmp_path / "pred", device="cpu", num_threads=1)
    updates = _run_to_end(handle)
    assert updates[-1].kind == "done", updates[-1].message
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert names == ["phantom_000.nii.gz", "phantom_000_disagreement.nii.gz",
                     "phantom_001.nii.gz", "phantom_001_disagreement.nii.gz"]


def test_cancel_mid_run_keeps_a_checkpoint(dataset, tmp_path):
    threads0, fds0 = threading.active_count(), _open_fds()
    handle = TrainJob.start(_cfg(2000), dataset / "imagesTr", dataset / "labelsTr", tmp_path / "run")
    deadline = time.monotonic() + TIMEOUT
    seen: list[ProgressUpdate] = []
    while not any(u.kind == "progress" and u.iteration >= 2 for u in seen):
        assert time.monotonic() < deadline and handle.is_running(), [u.kind for u in seen]
        seen += handle.poll()
        time.sleep(0.05)
    handle.cancel()
    updates = seen + _run_to_end(handle)
    final = updates[-1]
    assert final.kind == "cancelled"
    assert final.result_path and os.path.exists(final.result_path)
    ckpt = load_checkpoint(final.result_path)
    assert 2 <= ckpt["iteration"] < 2000
    assert handle.exitcode == 0  # stopped by itself, not terminated
    assert threading.active_count() == threads0
    if fds0 is not None:
        assert _open_fds() <= fds0 + 1


def test_error_in_child_arrives_as_error_update(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    handle = TrainJob.start(_cfg(2), empty, None, tmp_path / "run")
    final = _run_to_end(handle)[-1]
    assert final.kind == "error"
    assert final.error_type and final.error_type.endswith("Error")
    assert str(empty) in final.message or "no" in final.message.lower()


def test_threads_and_files_return_to_baseline_after_start_cancel_cycles(dataset, tmp_path):
    threads0, fds0 = threading.active_count(), _open_fds()
    for i in range(4):
        handle = TrainJob.start(_cfg(50), dataset / "imagesTr", dataset / "labelsTr", tmp_path / f"r{i}", grace_s=20)
        handle.cancel()  # at once: the child notices before training starts
        final = handle.wait(TIMEOUT)
        assert final is not None and final.kind == "cancelled"
        assert not handle.is_running()
    assert threading.active_count() == threads0
    if fds0 is not None:
        assert _open_fds() <= fds0 + 1  # a lazily opened resource-tracker pipe at most


def test_child_that_dies_silently_gives_an_error(dataset, tmp_path):
    handle = TrainJob.start(_cfg(2000), dataset / "imagesTr", dataset / "labelsTr", tmp_path / "run")
    time.sleep(0.5)
    handle.process.kill()
    final = _run_to_end(handle)[-1]
    assert final.kind == "error" and "unexpectedly" in final.message
