"""Intensity normalisation: percentile clipping, modes, constant volumes, NaN refused."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.normalization import (
    NormalizationConfig,
    NormStats,
    compute_norm_stats,
    normalize,
    normalize_volume,
)
from barl_core.errors import InvalidVolumeError


def test_percentile_zscore_clips_outliers(rng):
    arr = rng.normal(100.0, 20.0, size=(20, 20, 20)).astype(np.float32)
    arr[0, 0, :5] = 30000.0  # metal
    out, stats = normalize_volume(arr)
    assert out.dtype == np.float32
    assert stats.upper < 1000 and stats.lower > -1000
    assert abs(float(out.mean())) < 0.05 and abs(float(out.std()) - 1.0) < 0.05
    assert float(out.max()) < 4.0  # the metal was clipped

def test_normalisation_modes(rng):
    arr = rng.uniform(-500, 1500, size=(10, 10, 10)).astype(np.float32)
    mm, _ = normalize_volume(
        arr, NormalizationConfig(mode="minmax", lower_percentile=0, upper_percentile=100)
    )
    assert float(mm.min()) == pytest.approx(0.0, abs=1e-6) and float(mm.max()) == pytest.approx(
        1.0, abs=1e-6
    )
    z, st = normalize_volume(arr, NormalizationConfig(mode="zscore"))
    assert float(z.std()) == pytest.approx(1.0, abs=1e-3)
    assert st.lower == pytest.approx(float(arr.min()))
    none, _ = normalize_volume(arr, NormalizationConfig(mode="none"))
    np.testing.assert_array_equal(none, arr)
    with pytest.raises(InvalidVolumeError):
        NormalizationConfig(mode="bogus")
    with pytest.raises(InvalidVolumeError):
        NormalizationConfig(lower_percentile=60, upper_percentile=40)

def test_constant_volume_and_stats_round_trip():
    out, stats = normalize_volume(np.full((4, 4, 4), 7.0))
    assert np.all(out == 0.0)
    restored = NormStats.from_dict(stats.to_dict())
    assert restored == stats
    fixed = NormStats(0.0, 10.0, 5.0, 2.0)
    np.testing.assert_allclose(
        normalize(np.array([[[-5.0, 5.0, 20.0]]]), fixed), [[[-2.5, 0.0, 2.5]]]
    )

def test_norm_stats_refuse_nan():
    arr = np.zeros((3, 3, 3), np.float32)
    arr[1, 1, 1] = np.nan
    with pytest.raises(InvalidVolumeError, match="NaN"):
        compute_norm_stats(arr)


# ---------------------------------------------------------------- loading
