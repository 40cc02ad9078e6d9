"""Fill between slices: shape-based interpolation between two annotated slices."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active.interpolate import bracketing_slices, interpolate_between, signed_distance
from barl_core.errors import InputFileError
from barl_core.evaluation.metrics import dice


def _two_balls(shape=(21, 48, 48)):
    """A growing ball (class 1) and a shrinking one (class 2), the truth on every slice."""
    z, y, x = np.indices(shape, dtype=float)
    r1 = 6 + 6 * z / (shape[0] - 1)
    r2 = 12 - 6 * z / (shape[0] - 1)
    truth = np.zeros(shape, np.uint8)
    truth[(y - 14) ** 2 + (x - 14) ** 2 < r1**2] = 1
    truth[(y - 33) ** 2 + (x - 33) ** 2 < r2**2] = 2
    return truth


def test_interpolation_beats_copying_the_nearest_slice():
    truth = _two_balls()
    labels = np.full(truth.shape, 255, np.uint8)
    z0, z1 = 2, 18
    labels[[z0, z1]] = truth[[z0, z1]]
    fill = interpolate_between(labels, z0, z1)
    assert sorted(fill) == list(range(z0 + 1, z1))
    for c in (1, 2):
        ours = np.mean([dice(fill[z] == c, truth[z] == c) for z in fill])
        nearest = np.mean(
            [dice(truth[z0 if z - z0 <= z1 - z else z1] == c, truth[z] == c) for z in fill]
        )
        assert ours > nearest and ours > 0.9


def test_spacing_is_physical():
    # a disc on slice 0 and a wider ellipse along x on slice 4, pixels 2x wider along x
    sd_iso = signed_distance(np.pad(np.ones((3, 3), bool), 5), (1.0, 1.0))
    sd_aniso = signed_distance(np.pad(np.ones((3, 3), bool), 5), (1.0, 2.0))
    assert sd_aniso[6, 0] == pytest.approx(2 * sd_iso[6, 0], rel=0.05)
    assert sd_aniso[0, 6] == pytest.approx(sd_iso[0, 6])


def test_refuses_scribbled_or_adjacent_slices():
    truth = _two_balls()
    labels = np.full(truth.shape, 255, np.uint8)
    labels[2] = truth[2]
    labels[9, 10:20, 10:20] = 1  # a scribble: the rest of slice 9 is unknown
    with pytest.raises(InputFileError, match="not fully annotated"):
        interpolate_between(labels, 2, 9)
    labels[3] = truth[3]
    with pytest.raises(InputFileError, match="nothing between"):
        interpolate_between(labels, 2, 3)
    # bracketing ignores the scribbled slice
    labels[12] = truth[12]
    assert bracketing_slices(labels, 8) == (3, 12)
    assert bracketing_slices(labels, 1) is None
