"""Shared test fixtures: small, fast and deterministic."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real labelled volumes (read-only) beside the checkout; absent in a user's clone.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    """CI has 2 cores; one torch thread per process keeps parallel work predictable."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder, or skip (a user's clone has no ../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (real-data tests run only beside it)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def reaped():
    """Factory: ``with reaped(child):`` SIGKILLs and reaps ``child`` on leaving, and closes its pipes.

    A test that kills a child on purpose ends the block there; one that fails inside it
    still leaves no process and no open pipe behind.
    """

    @contextlib.contextmanager
    def reap(child, timeout: float = 30):
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()  # SIGKILL on POSIX
            child.wait(timeout=timeout)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()

    return reap
