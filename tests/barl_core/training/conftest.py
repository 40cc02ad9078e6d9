"""Fixtures shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cli_train_args():
    """Factory: the ``barl train`` arguments of a small supervised CPU run on a dataset."""

    def _cli_train(dataset: Path, iterations: int, *extra: str) -> list[str]:
        """``barl train`` arguments of a small supervised CPU run on ``dataset``."""
        return [
            "train",
            "--images",
            str(dataset),
            "--method",
            "supervised",
            "--iterations",
            str(iterations),
            "--patch",
            "16",
            "16",
            "16",
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]

    return _cli_train
