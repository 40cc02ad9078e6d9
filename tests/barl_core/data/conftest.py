"""Helpers shared by the data tests."""

from __future__ import annotations

import numpy as np

from barl_core.data.labels import IGNORE_INDEX


def sparse_labels(shape=(12, 10, 9), slices=(2, 6, 9), axis=0, rng=None) -> np.ndarray:
    """Random classes 0..2 on ``slices`` along ``axis``, the ignore value elsewhere."""
    rng = rng or np.random.default_rng(0)
    full = rng.integers(0, 3, size=shape).astype(np.uint8)
    lab = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    idx = [slice(None)] * 3
    idx[axis] = list(slices)
    lab[tuple(idx)] = full[tuple(idx)]
    return lab
