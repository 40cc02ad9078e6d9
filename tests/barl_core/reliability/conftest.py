"""Shared pieces of the hostile-input and fault suite (issue 14; docs/reliability.md).

Every case runs a ``barl`` command (in this process through ``main``, or in a child process
where the fault needs one: a file-size limit, a second process, a kill) and checks the same
promise: a clear one-line error and exit 2 (or a correct result), no traceback, and every
file that existed before byte-identical afterwards. ``BARL_DEBUG=1`` is set, so a bug
surfaces as a traceback and fails its case instead of hiding behind the "internal error"
line. The ledger below counts the outcomes; pytest prints it at the end of the run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

#: Outcome counts of this run: cases, clear errors, correct results, tracebacks, files lost.
LEDGER: Counter = Counter()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``roots`` (symbolic links not followed)."""
    digests: dict[str, str] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for p in paths:
            if p.is_file() and not p.is_symlink():
                digests[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


def assert_kept(before: dict[str, str]) -> None:
    """Every file of ``before`` still exists with the same bytes (counted as lost if not)."""
    after = snapshot(*(Path(p) for p in before))
    lost = [p for p, h in before.items() if after.get(p) != h]
    LEDGER["files lost"] += len(lost)
    assert not lost, f"changed or removed: {lost}"


def _check_no_traceback(res: Outcome) -> None:
    if "Traceback" in res.err or "Traceback" in res.out:
        LEDGER["tracebacks"] += 1
        raise AssertionError(res.err[-3000:])


def expect_clear_error(res: Outcome, *needles: str) -> str:
    """Exit 2, one ``barl: error:`` line, no traceback; return that line."""
    LEDGER["cases"] += 1
    _check_no_traceback(res)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    barl_lines = [ln for ln in lines if ln.startswith("barl:")]
    assert res.code == 2, f"exit {res.code}: {res.err[-2000:]}"
    assert len(barl_lines) == 1 and barl_lines[0].startswith("barl: error:"), res.err
    assert len(lines) == 1, f"more than one line on stderr: {lines}"
    for needle in needles:
        assert needle.lower() in barl_lines[0].lower(), barl_lines[0]
    LEDGER["clear errors"] += 1
    return barl_lines[0]


def expect_success(res: Outcome) -> None:
    """Exit 0 without a traceback (the case has a correct result to check as well)."""
    LEDGER["cases"] += 1
    _check_no_traceback(res)
    assert res.code == 0, f"exit {res.code}: {res.err[-2000:]}"
    LEDGER["correct results"] += 1


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(BARL_DEBUG="1", LANG="C.UTF-8", OMP_NUM_THREADS="1", **extra)
    return env


def fsize_limit(n_bytes: int):
    """``preexec_fn`` for a child that may write no file beyond ``n_bytes`` (a full disk)."""

    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    return apply


def barl_child_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "barl_core", *argv]


def run_child(argv: list[str], *, preexec=None, timeout: float = 300) -> Outcome:
    """Run ``barl ARGV`` in a child process (its own limits, its own locks)."""
    proc = subprocess.run(
        barl_child_cmd(argv), env=child_env(), capture_output=True, text=True,
        preexec_fn=preexec, timeout=timeout, cwd=REPO_ROOT,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


class Helpers:
    """What the cases share, handed out by the ``rel`` fixture (tests import no conftest)."""

    snapshot = staticmethod(snapshot)
    assert_kept = staticmethod(assert_kept)
    expect_clear_error = staticmethod(expect_clear_error)
    expect_success = staticmethod(expect_success)
    run_child = staticmethod(run_child)
    fsize_limit = staticmethod(fsize_limit)
    child_env = staticmethod(child_env)
    barl_child_cmd = staticmethod(barl_child_cmd)
    ledger = LEDGER


@pytest.fixture
def rel() -> type[Helpers]:
    return Helpers


@pytest.fixture
def barl(capfd, monkeypatch):
    """``barl(*argv) -> Outcome``: the CLI in this process, file-descriptor output captured."""
    from barl_core.cli.main import main

    monkeypatch.setenv("BARL_DEBUG", "1")

    def run(*argv) -> Outcome:
        capfd.readouterr()
        code = main([str(a) for a in argv])
        captured = capfd.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_run(tiny_phantom_dataset, tiny_config, tmp_path_factory) -> dict[str, Path]:
    """A finished two-iteration run on the tiny phantom: dataset, run folder and model."""
    from barl_core.training.run import train

    ds = tiny_phantom_dataset("rel", shape=(16, 24, 24))
    run = tmp_path_factory.mktemp("rel_run") / "run"
    cfg = tiny_config(iterations=2, checkpoint_every=1)
    train(cfg, ds / "imagesTr", ds / "labelsTr", run)
    return {"dataset": ds, "run": run, "model": run / "model.pt"}


def pytest_terminal_summary(terminalreporter) -> None:
    if LEDGER["cases"]:
        terminalreporter.write_line(
            "reliability ledger: "
            + ", ".join(f"{k} {LEDGER[k]}" for k in ("cases", "clear errors", "correct results", "tracebacks", "files lost"))
        )
