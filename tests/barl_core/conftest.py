"""Shared engine-test fixtures: the tiny phantom dataset and the tiny training configuration.

Several modules train real (tiny) models; one definition of "tiny" keeps them equally fast on
the 2-core CI machine and lets a module state only what its test is about.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.training.config import TrainConfig, preset

#: The smallest training that still runs every part of a method (two branches, both batches).
TINY_TRAINING = dict(
    iterations=4,
    patch_size=(16, 16, 16),
    batch_labeled=1,
    batch_unlabeled=1,
    network={"base_channels": 4, "proj_dim": 8},
    device="cpu",
    checkpoint_every=0,
)


@pytest.fixture(scope="session")
def tiny_phantom_dataset(tmp_path_factory) -> Callable[..., Path]:
    """Factory ``(name, shape=(24, 24, 24)) -> Path``: two phantom cases in a fresh temp folder.

    One case has three annotated axial slices, the other none, so a run has labelled and
    unlabelled data; modules wrap it in a module-scoped ``dataset`` fixture to build it once.
    """

    def make(name: str, shape: tuple[int, int, int] = (24, 24, 24)) -> Path:
        return make_phantom_dataset(
            tmp_path_factory.mktemp(name) / "ds",
            2,
            config=PhantomConfig(shape=shape),
            labelled_cases=1,
            slices_per_case=3,
        )

    return make


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., TrainConfig]:
    """Factory ``(**overrides) -> TrainConfig``: the ``quick`` preset shrunk to :data:`TINY_TRAINING`."""

    def make(**overrides) -> TrainConfig:
        return preset("quick", **{**TINY_TRAINING, **overrides})

    return make
