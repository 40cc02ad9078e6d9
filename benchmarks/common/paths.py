"""Where the benchmarks read data and write results, and the folders they make."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Real data beside the checkout (read-only); absent in a user's clone.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def temp_work_dir(prefix: str, work_dir: str | os.PathLike | None) -> tempfile.TemporaryDirectory:
    """A temporary folder for training runs, inside ``--work-dir`` (created if missing)."""
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=work_dir)


def ensure_parent(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p
