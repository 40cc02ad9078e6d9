"""Per-slice class cross-sections and the over-reach margin, shared by the validator and the ranking."""

from __future__ import annotations

import numpy as np

from barl_core.active import ranking, size_factors
from barl_core.data.cross_sections import OVERREACH_MARGIN, class_slice_areas
from barl_core.data.labels import IGNORE_INDEX
from barl_core.training import validator


def _volume() -> np.ndarray:
    """4 x 5 x 6: slice 0 empty, slice 1 class 1 on 2x3, slice 2 class 2 on 5x6, slice 3 both + ignore."""
    vol = np.zeros((4, 5, 6), np.uint8)
    vol[1, 1:3, 2:5] = 1  # 6 voxels
    vol[2] = 2  # 30 voxels
    vol[3, 0, :] = 1  # 6 voxels
    vol[3, 4, :4] = 2  # 4 voxels
    vol[3, 2, :] = IGNORE_INDEX  # counted as no class
    return vol


def test_class_slice_areas_counts_each_foreground_class_on_each_slice():
    vol = _volume()
    areas = class_slice_areas(vol, 2, axis=0)
    assert areas.dtype == np.float64
    assert areas.tolist() == [[0, 0], [6, 0], [0, 30], [6, 4]]
    # fewer classes asked: columns for 1..n_fg only; none: an empty column block
    assert class_slice_areas(vol, 1, axis=0).tolist() == [[0], [6], [0], [6]]
    assert class_slice_areas(vol, 0, axis=0).shape == (4, 0)


def test_class_slice_areas_slices_along_the_given_axis():
    vol = _volume()
    # along x (axis 2, 6 slices): class 2 fills every x on slice 2 (5 voxels) and x 0-3 on row 4 of slice 3
    assert class_slice_areas(vol, 2, axis=2)[:, 1].tolist() == [6, 6, 6, 6, 5, 5]
    # along y (axis 1, 5 slices): class 1 on row 0 of slice 3 (6) and rows 1-2 of slice 1 (3 each)
    assert class_slice_areas(vol, 2, axis=1)[:, 0].tolist() == [6, 3, 3, 0, 0]


def test_one_overreach_margin_for_the_validator_and_the_ranking():
    assert OVERREACH_MARGIN == 2.0
    assert validator.OVERREACH_MARGIN is OVERREACH_MARGIN  # re-exported, not a second constant
    assert ranking.RankingConfig().overreach_margin == OVERREACH_MARGIN
    assert ranking.RANKING_PRESETS["focused3"].focus.trim_overreach == OVERREACH_MARGIN
    for fn in (size_factors.size_factors, size_factors.size_factors_from):
        assert fn.__kwdefaults__["overreach_margin"] == OVERREACH_MARGIN
