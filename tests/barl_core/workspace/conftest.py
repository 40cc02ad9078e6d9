"""Fixtures of the workspace tests: a small workspace with one case, a small phantom."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.phantom import PhantomConfig, make_phantom
from barl_core.io.volume import Volume
from barl_core.workspace.layout import Workspace


@pytest.fixture
def ws1(tmp_path, rng) -> Workspace:
    """A three-class workspace with one random case ``c1`` of shape (10, 12, 14)."""
    w = Workspace.create(tmp_path / "ws", ["background", "tooth", "lesion"])
    w.add_volume(
        Volume(rng.normal(size=(10, 12, 14)).astype(np.float32), spacing=(2.0, 1.0, 0.5)), "c1"
    )
    return w


@pytest.fixture(scope="module")
def phantom():
    """A small seeded dental phantom ``(volume, truth)`` for the session tests."""
    return make_phantom(PhantomConfig(shape=(24, 32, 32), seed=3))
