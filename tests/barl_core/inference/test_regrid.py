"""regrid.to_input_grid: slab by slab, the same values as one whole-grid resampling."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.resample import resample_to_reference
from barl_core.inference import regrid
from barl_core.io.volume import Volume


@pytest.mark.parametrize("is_label", [True, False])
def test_slabs_equal_one_resampling(rng, monkeypatch, is_label):
    reference = Volume(np.zeros((13, 9, 11), np.float32), spacing=(0.5, 0.4, 0.3), origin=(3.0, -1.0, 2.0),
                       direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    working = {"spacing": [1.1, 0.8, 0.7], "origin": list(reference.origin), "direction": list(reference.direction)}
    shape = (6, 5, 5)
    array = rng.integers(0, 4, shape).astype(np.uint8) if is_label else rng.random(shape).astype(np.float16)
    whole = resample_to_reference(array, {**working, "shape": list(shape)}, reference, is_label=is_label)
    monkeypatch.setattr(regrid, "_SLAB_VOXELS", 2 * 9 * 11)  # 2 slices a slab: 7 slabs
    slabs = regrid.to_input_grid(array, working, reference, is_label=is_label)
    assert slabs.dtype == array.dtype and slabs.shape == reference.shape
    np.testing.assert_array_equal(slabs, whole)
