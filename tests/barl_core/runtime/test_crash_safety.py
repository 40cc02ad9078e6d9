"""Crash safety: SIGKILL in the middle of a write never leaves a half-written file under its name.

A child process rewrites one file in a loop, numbering each version and logging every
completed write; the parent kills it (SIGKILL, no clean-up possible) as soon as it sees the
hidden temporary of a write in flight. Afterwards the file under its final name must be a
complete version, at least as new as the last one reported, and the leftover temporary must
be ignored by every loader and removable by :func:`barl_core.io.volume.remove_stale_temporaries`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from barl_core.data.dataset import load_dataset
from barl_core.io.volume import Volume, read_volume, remove_stale_temporaries
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.prepare import dataset_class_names, prepare_training_data
from barl_core.training.resume import latest_checkpoint
from barl_core.training.run import train
from barl_core.training.trainer import Trainer
from barl_core.workspace.layout import Workspace

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

REPO_ROOT = Path(__file__).resolve().parents[3]

# What version ``v`` of each file holds; shared verbatim by this module and the child (which
# must not import torch just to know it: its start-up is part of the test's time).
EXPECTED = r"""
import numpy as np
SHAPE = (96, 96, 96)
N_CLASSES = 3


def expected_labels(version):
    # sparse labels: random classes on every 4th slice, 255 elsewhere
    rng = np.random.default_rng(version)
    labels = np.full(SHAPE, 255, dtype=np.uint8)
    labels[::4] = rng.integers(0, N_CLASSES, size=labels[::4].shape, dtype=np.uint8)
    return labels


def expected_map(version):
    # a float prediction map (random: slow to compress, so a long write)
    return np.random.default_rng(version).random(SHAPE, dtype=np.float32)
"""
_expected: dict = {}
exec(EXPECTED, _expected)
SHAPE = _expected["SHAPE"]
expected_labels, expected_map = _expected["expected_labels"], _expected["expected_map"]

# The writer child: ``python -c CHILD kind folder progress_file``; it never stops by itself.
CHILD = (
    EXPECTED
    + r"""
import sys
kind, folder, progress = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(progress, "a", buffering=1)
if kind == "labels":
    from barl_core.workspace.layout import Workspace
    ws = Workspace.open(folder)
    write = lambda v: ws.save_labels("case", expected_labels(v))
elif kind == "prediction":
    from pathlib import Path
    from barl_core.io.volume import Volume, write_volume
    write = lambda v: write_volume(Volume(expected_map(v), spacing=(0.5, 0.4, 0.4)), Path(folder) / "pred.nii.gz")
else:
    import torch
    from pathlib import Path
    from barl_core.training.checkpoint import save_checkpoint
    ckpts = Path(folder) / "checkpoints"
    def write(v):
        save_checkpoint(ckpts / f"ckpt_{v:06d}.pt", {
            "method": "supervised", "n_branches": 1, "network": {}, "class_names": ["a", "b"],
            "iteration": v, "model_state": {"w": torch.full((6_000_000,), float(v))}})
        old = ckpts / f"ckpt_{v - 2:06d}.pt"   # keep the last two, as the trainer does
        old.unlink(missing_ok=True)
v = 0
while True:
    v += 1
    write(v)
    log.write(f"{v}\n")
"""
)


def _hidden_temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def _completed(progress: Path) -> int:
    lines = progress.read_text().split() if progress.exists() else []
    return int(lines[-1]) if lines else 0


def _sigkill_when(child: subprocess.Popen, ready, poll_s: float) -> None:
    """Poll ``ready()`` while ``child`` lives, then SIGKILL it; always reap it."""
    try:
        while not ready():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            time.sleep(poll_s)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def _kill_mid_write(
    kind: str, folder: Path, watch: Path, min_versions: int = 2
) -> tuple[int, bool]:
    """Run the writer child, SIGKILL it while a temporary in ``watch`` exists.

    Returns the last version the child reported complete and whether a temporary was
    left behind (the kill landed inside a write).
    """
    progress = folder.parent / f"{folder.name}_{kind}_progress.txt"
    progress.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(folder), str(progress)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30

    def write_in_flight() -> bool:
        # the final name exists and was replaced, and another write has begun
        if _completed(progress) < min_versions:
            assert time.monotonic() < deadline, "the writer made no progress"
            return False
        assert time.monotonic() < deadline, "never saw a write in flight"
        return bool(_hidden_temporaries(watch))

    _sigkill_when(child, write_in_flight, poll_s=0.0005)
    assert child.returncode == -signal.SIGKILL
    return _completed(progress), bool(_hidden_temporaries(watch))


def _kill_until_mid_write(kind: str, folder: Path, watch: Path, check) -> None:
    """Kill the writer a few times; every kill must leave a good file, one must hit a write.

    ``check(done)`` gets the iterations the child reported complete before each kill (and,
    after the clean-up, those of the last kill again).
    """
    hit = 0
    done = 0
    for _attempt in range(4):
        done, leftover = _kill_mid_write(kind, folder, watch)
        check(done)
        hit += leftover
        if hit:
            break
    assert hit, "no kill landed inside a write (the test did not test anything)"
    # the leftovers are ours and removable; nothing else is touched
    removed = remove_stale_temporaries(folder, min_age_s=0)
    assert removed and not _hidden_temporaries(folder)
    check(done)


def test_kill_during_label_autosave_keeps_the_last_saved_annotation(tmp_path):
    ws_dir = tmp_path / "ws"
    ws = Workspace.create(ws_dir, ["background", "bone", "tooth"])
    ws.add_volume(Volume(np.zeros(SHAPE, np.int16), spacing=(0.5, 0.4, 0.4)), "case")
    ws.save_labels("case", expected_labels(0))
    label_file = ws.label_path("case")
    ws.close()  # hand the workspace lock over to the writer child

    def check(done):
        reopened = Workspace.open(ws_dir)  # opens despite the leftover temporary and the dead lock
        assert reopened.cases == ["case"]
        labels = reopened.load_labels("case")
        assert any(np.array_equal(labels, expected_labels(v)) for v in (done, done + 1))
        assert reopened.annotated_slices("case") == list(range(0, SHAPE[0], 4))
        assert read_volume(label_file).spacing == pytest.approx((0.5, 0.4, 0.4))
        # the training loader takes the real case only, never a temporary
        cases = load_dataset(ws_dir / "imagesTr", ws_dir / "labelsTr")
        assert [c.name for c in cases] == ["case"] and np.array_equal(cases[0].labels, labels)
        reopened.close()

    _kill_until_mid_write("labels", ws_dir, ws_dir / "labelsTr", check)


def test_kill_during_prediction_write_keeps_a_complete_map(tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    target = out / "pred.nii.gz"

    def check(done):
        vol = read_volume(target)
        assert any(np.array_equal(vol.array, expected_map(v)) for v in (done, done + 1))
        assert vol.spacing == pytest.approx((0.5, 0.4, 0.4))
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
            "pred.nii.gz"
        ]

    _kill_until_mid_write("prediction", out, out, check)


def test_kill_during_checkpoint_write_keeps_the_last_complete_checkpoint(tmp_path):
    run = tmp_path / "run"

    def check(done):
        latest = latest_checkpoint(run)
        ckpt = load_checkpoint(latest)
        assert ckpt["iteration"] in (done, done + 1)
        assert latest.name == f"ckpt_{ckpt['iteration']:06d}.pt"
        w = ckpt["model_state"]["w"]
        assert w.shape == (6_000_000,) and bool((w == ckpt["iteration"]).all())

    _kill_until_mid_write("checkpoint", run, run / "checkpoints", check)


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def dataset(tiny_phantom_dataset):
    return tiny_phantom_dataset("crash")


def test_training_killed_midway_resumes_with_its_count_and_optimizer_state(
    dataset, tmp_path, tiny_config
):
    cfg = tiny_config(method="cps", iterations=8, checkpoint_every=2)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    # slow the child down a little so that the kill lands before the end of the run
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, barl_core.training.trainer as t; from barl_core.cli.main import main\n"
            "step = t.Trainer.train_step\n"
            "t.Trainer.train_step = lambda self, i: (time.sleep(0.15), step(self, i))[1]\n"
            "sys.exit(main(sys.argv[1:]))",
            "train",
            "--images",
            str(dataset),
            "--out",
            str(run),
            "--config",
            str(cfg_file),
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60

    def first_checkpoint_written() -> bool:
        assert time.monotonic() < deadline
        return bool(list((run / "checkpoints").glob("ckpt_*.pt")))

    _sigkill_when(child, first_checkpoint_written, poll_s=0.01)
    assert not (run / "model.pt").exists(), "the run finished before it was killed"
    last = latest_checkpoint(run)
    saved = load_checkpoint(last)
    k = saved["iteration"]
    assert 2 <= k < 8 and k % 2 == 0
    # the restored state is the checkpoint's: iteration count and optimiser momentum
    full_cfg = cfg.with_classes(dataset_class_names(dataset))
    volumes, _, names = prepare_training_data(load_dataset(dataset), full_cfg)
    peek = Trainer(full_cfg.with_classes(names), volumes, tmp_path / "peek")
    peek.initialize()
    peek.load_checkpoint(last)
    assert peek.iteration == k
    restored = peek.optimizer.state_dict()["state"]
    assert (
        saved["optimizer_state"]["state"]
        and restored.keys() == saved["optimizer_state"]["state"].keys()
    )
    for key, value in saved["optimizer_state"]["state"].items():
        assert restored[key].keys() == value.keys()  # momentum (SGD) or Adam moments
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(restored[key][name]), torch.as_tensor(tensor))
    # resuming finishes the schedule exactly as an uninterrupted run would have
    resumed = train(
        replace(cfg, iterations=999), dataset, None, run, resume=True
    )  # saved config wins
    assert resumed.status == "completed" and resumed.iterations_done == 8
    assert [r["iteration"] for r in resumed.history] == list(range(1, 9))
    reference = train(cfg, dataset, None, tmp_path / "reference")
    assert [r["loss"] for r in resumed.history] == pytest.approx(
        [r["loss"] for r in reference.history], rel=1e-4
    )
    final, ref = load_checkpoint(resumed.model_path), load_checkpoint(reference.model_path)
    for name, value in ref["model_state"].items():
        assert torch.allclose(final["model_state"][name], value, atol=1e-5), name
