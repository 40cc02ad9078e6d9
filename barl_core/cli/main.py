"""The ``barl`` command line.

Each subcommand lives in :mod:`barl_core.cli` as a module with
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
User errors (:class:`~barl_core.errors.BarlError`) print one line and exit 2. So do the
failures of the machine rather than of the input, wherever they surface: a full disk, a
file-size limit, a read-only folder (``OSError``) and an allocation that cannot be met
(``MemoryError``). Anything else is a bug: one line, exit 1, and the traceback only with
``BARL_DEBUG=1`` (which the reliability suite sets, so that bugs are counted, not hidden).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from barl_core import __version__
from barl_core.errors import BarlError, CancelledError
from barl_core.io.atomic import describe_os_error

__all__ = ["main", "build_parser", "COMMANDS"]

#: Subcommand modules under barl_core.cli, in the order ``--help`` lists them.
COMMANDS = ("info", "evaluate", "train", "predict", "suggest", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``barl`` parser: one subcommand per module in :data:`COMMANDS`."""
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
    """Run ``barl`` with ``argv``; every user error is one line on stderr and exit code 2."""
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
        print(f"barl: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, file-size limit, read-only, name too long, ...
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"barl: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("barl: error: out of memory (the input is too large for this machine)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so in one line; BARL_DEBUG=1 shows the traceback
        if os.environ.get("BARL_DEBUG"):
            raise
        print(
            f"barl: internal error (please report it; BARL_DEBUG=1 shows details): "
            f"{type(exc).__name__}: {_one_line(str(exc))}",
            file=sys.stderr,
        )
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
