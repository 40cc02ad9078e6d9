"""Working resolution: resampling keeps geometry, labels and ignore; the way back is exact."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.resample import needs_resampling, resample_to_reference, resample_volume
from barl_core.errors import InvalidVolumeError
from barl_core.io.volume import Volume

_ROT = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 degrees about z


def _volume():
    z, y, x = np.mgrid[:12, :40, :30]
    ball = ((z - 6) * 2.0) ** 2 + ((y - 20) * 0.5) ** 2 + ((x - 15) * 0.6) ** 2 < 7.0**2
    image = (ball * 100.0 + y * 0.5).astype(np.float32)
    return Volume(image, spacing=(2.0, 0.5, 0.6), origin=(10.0, -4.0, 3.0), direction=_ROT), ball


def test_resample_keeps_origin_direction_and_extent():
    vol, _ = _volume()
    out = resample_volume(vol, (1.0, 1.0, 1.0))
    assert out.spacing == (1.0, 1.0, 1.0)
    assert out.origin == vol.origin and out.direction == vol.direction
    assert out.shape == (24, 20, 18)  # same physical extent: 12*2, 40*0.5, 30*0.6
    assert out.array.dtype == np.float32


def test_round_trip_lands_exactly_on_the_original_grid():
    vol, ball = _volume()
    work = resample_volume(vol, (1.0, 1.5, 1.5))
    back = resample_to_reference(work.array, work, vol, is_label=False)
    assert back.shape == vol.shape and back.dtype == work.array.dtype
    labels = resample_volume(vol.with_array(ball.astype(np.uint8)), (1.0, 1.5, 1.5), is_label=True)
    back_labels = resample_to_reference(labels.array, labels.geometry(), vol, is_label=True)
    assert back_labels.shape == vol.shape
    dice = (
        2 * (back_labels.astype(bool) & ball).sum() / (back_labels.astype(bool).sum() + ball.sum())
    )
    assert dice > 0.85
    # a working grid equal to the reference grid comes back untouched
    assert resample_to_reference(vol.array, vol, vol, is_label=False) is vol.array


def test_ignore_value_stays_ignore_and_never_blends():
    vol, ball = _volume()
    labels = np.full(vol.shape, 255, np.uint8)
    labels[4] = ball[4]  # one annotated slice (thick: 2 mm)
    labels[8] = ball[8] * 2
    out = resample_volume(vol.with_array(labels), (1.0, 1.0, 1.0), is_label=True)
    values = set(np.unique(out.array).tolist())
    assert values <= {0, 1, 2, 255} and 255 in values and 1 in values
    assert out.array.dtype == np.uint8
    # annotated slices survive (z: 2 mm -> 1 mm duplicates each slice)
    assert (out.array[8] != 255).any() and (out.array[16] != 255).any()


def test_probabilities_with_channels_and_float16():
    vol, _ = _volume()
    work = resample_volume(vol, (2.0, 1.0, 1.0))
    probs = np.stack([np.full(work.shape, 0.25, np.float16), np.full(work.shape, 0.75, np.float16)])
    back = resample_to_reference(probs, work, vol, is_label=False)
    assert back.shape == (2, *vol.shape) and back.dtype == np.float16
    inside = back[:, 1:-1, 1:-1, 1:-1]
    assert np.allclose(inside[1], 0.75, atol=1e-3)


def test_identity_and_bad_spacing():
    vol, _ = _volume()
    assert resample_volume(vol, None) is vol
    assert resample_volume(vol, vol.spacing) is vol
    assert not needs_resampling(vol, (2.0, 0.5, 0.6))
    with pytest.raises(InvalidVolumeError, match="target spacing"):
        resample_volume(vol, (1.0, 0.0, 1.0))
