"""Synthetic cases shared by the ranking tests (right answers known by construction)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def truth():
    """A (40, 24, 24) label map: class 1 at z 10-29 (6x6 = 36 voxels a slice), class 2 at z 14-25 (4x4) beside it."""
    t = np.zeros((40, 24, 24), np.uint8)
    t[10:30, 4:10, 4:10] = 1
    t[14:26, 14:18, 14:18] = 2
    return t
