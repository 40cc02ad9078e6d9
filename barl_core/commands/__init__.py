"""Subcommands of the ``barl`` CLI, one module each (see :mod:`barl_core.cli`)."""
