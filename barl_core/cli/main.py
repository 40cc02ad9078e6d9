"""The ``barl`` command line.

Each subcommand lives in :mod:`barl_core.cli` as a module with
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
User errors (:class:`~barl_core.errors.BarlError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from barl_core import __version__
from barl_core.errors import BarlError, CancelledError

__all__ = ["main", "build_parser", "COMMANDS"]

#: Subcommand modules under barl_core.cli, in the order ``--help`` lists them.
COMMANDS = ("info", "evaluate", "train", "predict", "suggest", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="barl",
        description="napari-barl engine: segment 3D volumes from a few labelled slices (BARL).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"barl_core.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CancelledError as exc:
        print(f"barl: cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("barl: interrupted", file=sys.stderr)
        return 130
    except BarlError as exc:
        print(f"barl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
