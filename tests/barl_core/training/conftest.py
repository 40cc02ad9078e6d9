"""Fixtures shared by the training tests: a 32^3 phantom, small supervised configs, CLI arguments."""

from __future__ import annotations

import functools
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


@pytest.fixture(scope="module")
def dataset(tiny_phantom_dataset):
    """A 32^3 phantom dataset (modules with their own ``dataset`` fixture override it)."""
    return tiny_phantom_dataset("reliability", shape=(32, 32, 32))


@pytest.fixture(scope="module")
def make_cfg(tiny_config):
    """Factory: supervised 32^3 runs with batches of 2, so that an out-of-memory retry can halve them."""
    return functools.partial(
        tiny_config,
        method="supervised",
        iterations=3,
        patch_size=(32, 32, 32),
        batch_labeled=2,
        batch_unlabeled=2,
    )
