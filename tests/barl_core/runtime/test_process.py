"""The generic child process: a fresh interpreter, framing, and no orphans.

The two process tests run a *user script* in its own interpreter, as a user would: one
without an ``if __name__ == "__main__"`` guard (the child must not run it again), and one
that is killed while its training child runs (the child must stop and exit by itself).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from barl_core.runtime.process import start_job
from barl_core.runtime.protocol import ProgressUpdate, read_message, write_message

REPO_ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 180


def _python(script: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=script.parent,
                            text=True, **kwargs)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def test_messages_round_trip():
    buf = io.BytesIO()
    upd = ProgressUpdate("progress", iteration=3, total=9, losses={"loss": 0.5})
    write_message(buf, upd)
    write_message(buf, {"x": (1, 2)})
    buf.seek(0)
    assert read_message(buf) == upd and read_message(buf) == {"x": (1, 2)}
    with pytest.raises(EOFError):
        read_message(buf)


def test_targets_must_be_importable_by_name():
    with pytest.raises(ValueError, match="module-level"):
        start_job(lambda updates, event: None, (), "training")


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    marker = tmp_path / "runs.txt"
    script = tmp_path / "user_script.py"
    script.write_text(
        "from pathlib import Path\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write('run\\n')\n"
        "from barl_core.runtime.jobs import TrainJob\n"
        "from barl_core.training.config import preset\n"
        f"Path({str(tmp_path / 'empty')!r}).mkdir(exist_ok=True)\n"
        f"h = TrainJob.start(preset('quick', device='cpu'), {str(tmp_path / 'empty')!r}, None,"
        f" {str(tmp_path / 'run')!r})\n"
        f"final = h.wait({TIMEOUT})\n"
        "print(final.kind, final.error_type)\n"
    )
    proc = _python(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=TIMEOUT + 60)
    assert proc.returncode == 0, err
    assert out.split()[0] == "error"  # the child ran the job: an empty folder is an error
    assert marker.read_text().splitlines() == ["run"]  # and did not run the script again


def test_the_child_stops_when_its_parent_is_killed(tmp_path, tiny_phantom_dataset):
    ds = tiny_phantom_dataset("orphan")
    run = tmp_path / "run"
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from barl_core.runtime.jobs import TrainJob\n"
        "from barl_core.training.config import preset\n"
        "cfg = preset('quick', iterations=100000, patch_size=(16, 16, 16), batch_labeled=1,"
        " batch_unlabeled=1, network={'base_channels': 4, 'proj_dim': 8}, device='cpu',"
        " checkpoint_every=0, num_threads=1)\n"
        f"h = TrainJob.start(cfg, {str(ds / 'imagesTr')!r}, {str(ds / 'labelsTr')!r},"
        f" {str(run)!r}, grace_s=60)\n"
        "print(h.process.pid, flush=True)\n"
        "while not any(u.kind == 'progress' for u in h.poll()):\n"
        "    time.sleep(0.1)\n"
        "print('training', flush=True)\n"
        "time.sleep(3600)\n"
    )
    parent = _python(script, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    child_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "training"
    assert not _gone(child_pid)
    parent.send_signal(signal.SIGKILL)  # no clean-up possible in the parent
    parent.wait()
    deadline = time.monotonic() + TIMEOUT
    while not _gone(child_pid):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.2)
    # it stopped as a cancel does: at an iteration boundary, with a checkpoint
    assert sorted((run / "checkpoints").glob("ckpt_*.pt"))
