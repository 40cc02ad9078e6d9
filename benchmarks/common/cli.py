"""Command-line options shared by the benchmark scripts, so their defaults cannot drift apart."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .paths import RESULTS_DIR, SHARED_DATA


def parse_parts_and_methods(p: argparse.ArgumentParser, args: argparse.Namespace,
                            parts: Sequence[str], methods: Sequence[str]) -> None:
    """Turn ``args.parts``/``args.methods`` (comma lists) into lists; unknown names are a usage error."""
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.methods = [s.strip() for s in args.methods.split(",") if s.strip()]
    bad = sorted(set(args.parts) - set(parts)) + sorted(set(args.methods) - set(methods))
    if bad:
        p.error(f"unknown part(s)/method(s): {', '.join(bad)}")


def optional_path(value: str) -> Path | None:
    """Argparse type: an empty string means "none" (``--plot ''``)."""
    return Path(value) if value else None


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--data``, ``--n-test`` and ``--seeds``.

    The Dice benchmarks must agree on the data folder, the fixed test split and the seeds, or their
    numbers are not comparable; one definition keeps the defaults from drifting apart.
    """
    p.add_argument("--data", type=Path, default=SHARED_DATA / "hippocampus",
                   help="MSD folder with imagesTr/ and labelsTr/ (default: ../shared/data/hippocampus)")
    p.add_argument("--n-test", type=int, default=40, help="test cases of the fixed split (default 40)")
    p.add_argument("--seeds", default="0,1", help="training seeds (default 0,1)")


def add_model_arguments(p: argparse.ArgumentParser, *, patch_help: str | None = None,
                        base_help: str | None = None, batches: bool = False) -> None:
    """Add ``--patch Z Y X`` and ``--base-channels`` (and the two batch sizes with ``batches``).

    The defaults are ``None`` so that each script fills in its own (and its ``--smoke`` sizes)
    after parsing; only the help texts differ between the scripts.
    """
    p.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None, help=patch_help)
    p.add_argument("--base-channels", type=int, default=None, help=base_help)
    if batches:
        p.add_argument("--batch-labeled", type=int, default=2)
        p.add_argument("--batch-unlabeled", type=int, default=2)


def add_device_arguments(p: argparse.ArgumentParser, *, default: str | None = "cpu",
                         device_help: str | None = None) -> None:
    """Add ``--device`` and ``--threads`` (torch threads, see :func:`set_threads`)."""
    p.add_argument("--device", default=default, help=device_help)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def add_output_arguments(p: argparse.ArgumentParser, name: str, *, resume_help: str | None = None,
                         work_dir_help: str | None = None) -> None:
    """Add ``--out``, ``--plot``, ``--resume`` (only with ``resume_help``), ``--work-dir`` and ``--smoke``.

    ``name`` is the stem of the default ``benchmarks/results/NAME.json`` and ``NAME.png``, so every
    script writes where ``benchmarks/report.py`` looks.
    """
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json")
    p.add_argument("--plot", type=optional_path, default=RESULTS_DIR / f"{name}.png",
                   help="PNG plot ('' for none)")
    if resume_help is not None:
        p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--work-dir", type=Path, default=None, help=work_dir_help)
    p.add_argument("--smoke", action="store_true", help="tiny sizes for a quick check (tests)")
