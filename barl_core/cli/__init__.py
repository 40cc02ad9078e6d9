"""The ``barl`` command line: one module per subcommand."""

from barl_core.cli.main import COMMANDS, build_parser, main

__all__ = ["main", "build_parser", "COMMANDS"]
