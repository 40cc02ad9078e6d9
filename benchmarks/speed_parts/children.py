"""How the memory and GUI parts start ``speed.py`` again as a clean child process.

Why a child: a fresh process holds nothing the parent allocated, so its peak memory is the
prediction's, and a Qt event loop in it does not share the parent's interpreter.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks import common

__all__ = ["SCRIPT", "child_env"]

#: The script the children run (its hidden ``--_memory-child``, ``--_phantom-child``, ``--_gui-child``).
SCRIPT = Path(__file__).resolve().parents[1] / "speed.py"


def child_env(args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    root = str(common.REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env
