"""One ignore value and one rule for "this slice is annotated"."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active import proposals, suggest
from barl_core.data.labels import IGNORE_INDEX, annotated_mask, annotated_slices
from barl_core.errors import InvalidVolumeError
from barl_core.training.config import TrainConfig


def test_annotated_slices_along_each_axis():
    lab = np.full((5, 6, 7), IGNORE_INDEX, np.uint8)
    lab[1, 2, 3] = 0  # a single background voxel annotates axial slice 1
    lab[3] = 2
    assert annotated_slices(lab) == [1, 3]
    assert annotated_slices(lab, axis=1) == list(range(6))
    assert annotated_mask(lab, axis=2).tolist() == [True] * 7
    assert annotated_slices(np.full((3, 3, 3), IGNORE_INDEX, np.uint8)) == []
    assert annotated_slices(None) == []


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidVolumeError):
        annotated_mask(np.zeros((3, 3)))
    with pytest.raises(InvalidVolumeError):
        annotated_mask(np.zeros((3, 3, 3)), axis=3)


def test_every_user_of_the_ignore_value_shares_it():
    assert proposals.NEEDS_HUMAN == IGNORE_INDEX
    assert TrainConfig().ignore_index == IGNORE_INDEX
    lab = np.full((4, 4, 4), IGNORE_INDEX, np.uint8)
    lab[2] = 1
    np.testing.assert_array_equal(suggest.annotated_slices(lab), annotated_mask(lab))
