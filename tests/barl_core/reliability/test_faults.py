"""Faults of the machine, not of the input: a full disk (a file-size limit in a child process,
a tiny tmpfs where one can be mounted), two processes on one folder, and kills.

Each case runs real ``barl`` commands in child processes and checks the promise: exit 2 with
one clear line (or a correct result), no traceback, and every file that was saved before the
fault byte-identical afterwards (or, after a kill, complete under its final name).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from barl_core.errors import LockedError
from barl_core.io.volume import Volume, read_volume, write_labels, write_volume
from barl_core.training.checkpoint import load_checkpoint
from barl_core.workspace.layout import Workspace

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals and rlimits")

#: Far below any volume or checkpoint we write, far above a lock file or a short JSON line.
FSIZE = 4096


def _wait_for(condition, proc: subprocess.Popen, what: str, limit_s: float = 240.0) -> None:
    """Poll until ``condition()``; fail (not hang) if the child dies or never gets there."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"child ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp" in p.name]


def _tiny_config(tmp_path: Path, **changes) -> Path:
    from barl_core.training.config import preset

    cfg = preset("quick", iterations=100_000, patch_size=(16, 16, 16), batch_labeled=1, batch_unlabeled=1,
                 network={"base_channels": 4, "proj_dim": 8}, device="cpu", checkpoint_every=1,
                 num_threads=1, **changes)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg.to_dict()))
    return path


# ------------------------------------------------------------------ full disk
def test_disk_full_while_predicting_over_a_saved_result(rel, tiny_run, tmp_path):
    src = write_volume(Volume(np.random.default_rng(0).normal(size=(16, 24, 24)).astype(np.float32)),
                       tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    # an earlier result: the float disagreement map (the label map of this tiny model may
    # compress below the limit and be replaced, correctly, by the new one)
    write_volume(read_volume(src), out / "case_disagreement.nii.gz")
    before = rel.snapshot(tmp_path)
    res = rel.run_child(["predict", "--model", str(tiny_run["model"]), "--image", str(src), "--out", str(out),
                         "--disagreement", str(out), "--device", "cpu", "--quiet"],
                        preexec=rel.fsize_limit(FSIZE))
    rel.expect_clear_error(res, "case_disagreement.nii.gz")
    rel.assert_kept(before)
    assert _no_temporaries(tmp_path)


AUTOSAVE_CHILD = r"""
import sys, numpy as np
from barl_core.errors import BarlError
from barl_core.workspace.layout import Workspace
ws = Workspace.open(sys.argv[1])
labels = np.full(ws.reference("case").shape, 255, np.uint8)
labels[3:7] = np.random.default_rng(3).integers(0, 3, size=labels[3:7].shape)  # > the file-size limit
try:
    ws.save_labels("case", labels)
except BarlError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def test_disk_full_during_label_autosave(rel, tmp_path):
    ws = Workspace.create(tmp_path / "ws", ["background", "bone", "tooth"])
    ws.add_volume(Volume(np.random.default_rng(1).normal(size=(12, 64, 64)).astype(np.float32)), "case")
    labels = np.full((12, 64, 64), 255, np.uint8)
    labels[1] = np.random.default_rng(2).integers(0, 3, size=(64, 64))
    ws.save_labels("case", labels)
    ws.close()
    before = rel.snapshot(ws.folder)
    proc = subprocess.run([sys.executable, "-c", AUTOSAVE_CHILD, str(ws.folder)], env=rel.child_env(),
                          capture_output=True, text=True, preexec_fn=rel.fsize_limit(FSIZE), timeout=300)
    rel.ledger["cases"] += 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and proc.stderr.startswith("error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    rel.ledger["clear errors"] += 1
    rel.assert_kept(before)
    reopened = Workspace.open(ws.folder)  # still opens, with the last saved annotation
    assert reopened.annotated_slices("case") == [1]
    reopened.close()


def test_disk_full_during_resume(rel, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run)
    (run / "model.pt").unlink()  # an interrupted run: only its first checkpoint is there
    log = run / "metrics.jsonl"
    logged = log.read_bytes()
    log.unlink()  # the metrics log is append-only by design: checked as a prefix below
    before = rel.snapshot(run)
    log.write_bytes(logged)
    res = rel.run_child(["train", "--images", str(tiny_run["dataset"]), "--out", str(run), "--resume",
                         "--quiet", "--device", "cpu"], preexec=rel.fsize_limit(FSIZE))
    rel.expect_clear_error(res)
    rel.assert_kept(before)
    assert log.read_bytes().startswith(logged)
    assert _no_temporaries(run)


def test_full_tmpfs(rel, tiny_run, tmp_path):
    mnt = tmp_path / "tiny_fs"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:120]}); "
                    "the file-size-limit cases cover a full disk")
    try:
        src = write_volume(Volume(np.random.default_rng(0).normal(size=(16, 24, 24)).astype(np.float32)),
                           tmp_path / "case.nii.gz")
        saved = write_labels(np.ones((16, 24, 24), np.uint8), read_volume(src), mnt / "case.nii.gz")
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as fh:  # fill the rest of the file system
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
        before = rel.snapshot(saved)
        res = rel.run_child(["predict", "--model", str(tiny_run["model"]), "--image", str(src), "--out",
                             str(mnt), "--disagreement", str(mnt), "--device", "cpu", "--quiet"])
        rel.expect_clear_error(res)
        rel.assert_kept(before)
        assert _no_temporaries(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ------------------------------------------------------------------ concurrency and kills
def test_second_training_is_refused_and_a_killed_runs_lock_is_taken_over(rel, tiny_run, tmp_path, reaped):
    run = tmp_path / "run"
    cfg = _tiny_config(tmp_path)
    argv = ["train", "--images", str(tiny_run["dataset"]), "--out", str(run), "--config", str(cfg), "--quiet"]
    first = subprocess.Popen(rel.barl_child_cmd(argv), env=rel.child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    with reaped(first):  # leaving the block kills the first mid-run (SIGKILL)
        _wait_for(lambda: any((run / "checkpoints").glob("ckpt_*.pt")), first, "the first checkpoint")
        # a second process into the same run: refused at once, naming the first
        second = rel.run_child([*argv[:-1], "--resume", "--quiet"])
        rel.expect_clear_error(second, f"process {first.pid}")
    # what the killed run saved stays complete under its final names
    for ckpt in sorted((run / "checkpoints").glob("ckpt_*.pt")):
        load_checkpoint(ckpt)  # complete, or this raises
    stale = run / "checkpoints" / ".ckpt_999999.pt.abcd1234.tmp.pt"  # as a kill mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    # the dead process's lock is taken over: a new run replaces the killed one on request
    third = rel.run_child([*argv[:-1], "--overwrite", "--iterations", "2", "--quiet"])
    rel.expect_success(third)
    assert load_checkpoint(run / "model.pt")["iteration"] == 2
    assert not stale.exists() and not (run / ".barl.lock").exists()


HOLDER_CHILD = r"""
import sys
from barl_core.workspace.layout import Workspace
ws = Workspace.open(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
"""


def test_second_app_process_gets_the_workspace_read_only(rel, tmp_path, reaped):
    ws = Workspace.create(tmp_path / "ws", ["background", "tooth"])
    ws.add_volume(Volume(np.zeros((4, 5, 6), np.float32)), "case")
    ws.close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_CHILD, str(ws.folder)], env=rel.child_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(holder):  # leaving the block kills the holder (SIGKILL): its lock goes stale
        assert holder.stdout.readline().strip() == "open", holder.stderr.read()
        rel.ledger["cases"] += 1
        with pytest.raises(LockedError, match=f"process {holder.pid}"):
            Workspace.open(ws.folder)
        rel.ledger["clear errors"] += 1
        before = rel.snapshot(ws.folder)
        ro = Workspace.open(ws.folder, read_only=True)
        assert ro.cases == ["case"]
        with pytest.raises(LockedError):
            ro.save_labels("case", np.zeros((4, 5, 6), np.uint8))
        rel.assert_kept(before)
    again = Workspace.open(ws.folder)  # the killed holder's lock is stale: taken over
    again.save_labels("case", np.zeros((4, 5, 6), np.uint8))
    assert again.annotated_slices("case") == [0, 1, 2, 3]
    again.close()


def test_temporaries_of_a_killed_predict_are_cleaned_by_the_next(rel, barl, tiny_run, tmp_path):
    src = write_volume(Volume(np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)),
                       tmp_path / "case.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".case.nii.gz.k1ll3d00.tmp.nii.gz"
    stale.write_bytes(b"half a label map")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    res = barl("predict", "--model", tiny_run["model"], "--image", src, "--out", out, "--device", "cpu", "--quiet")
    rel.expect_success(res)
    assert not stale.exists() and read_volume(out / "case.nii.gz").shape == (8, 16, 16)


def test_read_only_output_folder(rel, barl, tiny_run, tmp_path):
    """``--out`` / ``--json`` on a read-only file system (root ignores permission bits)."""
    mnt = tmp_path / "ro_fs"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({mounted.stderr.decode().strip()[:120]})")
    try:
        src = write_volume(Volume(np.zeros((4, 8, 8), np.float32)), tmp_path / "case.nii.gz")
        before = rel.snapshot(tmp_path)
        rel.expect_clear_error(barl("predict", "--model", tiny_run["model"], "--image", src, "--out",
                                    mnt / "p.nii.gz", "--device", "cpu"), "read-only")
        rel.expect_clear_error(barl("info", src, "--json", mnt / "i.json"), "read-only")
        rel.expect_clear_error(barl("train", "--images", tiny_run["dataset"], "--out", mnt / "run"), "read-only")
        rel.assert_kept(before)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
