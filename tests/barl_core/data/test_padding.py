"""The one padding rule of image patches (training sampler and sliding window share it)."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data import padding
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.padding import pad_image
from barl_core.data.sampler import PatchSampler, TrainingVolume
from barl_core.errors import InvalidVolumeError


def test_pad_image_replicates_the_edge_and_copies_nothing_without_padding():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert padding.IMAGE_PAD_MODE == "edge"
    out = pad_image(a, [(1, 0), (0, 2), (1, 1)])
    assert out.shape == (3, 5, 6)
    np.testing.assert_array_equal(out[1:, :3, 1:5], a)  # the volume itself, unchanged
    np.testing.assert_array_equal(out[0], out[1])  # z before: the first slice again
    np.testing.assert_array_equal(out[:, 3], out[:, 2])  # y after: the last row, twice
    np.testing.assert_array_equal(out[:, 4], out[:, 2])
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 5], out[..., 4])
    assert pad_image(a, [(0, 0)] * 3) is a


def test_pad_image_refuses_empty_arrays_and_negative_widths():
    with pytest.raises(InvalidVolumeError):
        pad_image(np.zeros((0, 3, 3), np.float32), [(1, 1)] * 3)
    with pytest.raises(InvalidVolumeError):
        pad_image(np.zeros((3, 3, 3), np.float32), [(1, -1), (0, 0), (0, 0)])


def test_sampler_pads_small_volumes_with_edge_values_and_ignore_labels(rng):
    # a ramp along x, so a constant fill (the minimum, as before) cannot pass for the edge
    img = np.broadcast_to(np.linspace(-2.0, 3.0, 5, dtype=np.float32), (4, 6, 5)).copy()
    img += rng.normal(scale=0.1, size=img.shape).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    sampler = PatchSampler([TrainingVolume(img, lab, "small")], (8, 8, 8), 0)
    images, labels = sampler.sample_labelled(3)
    # padded by (2, 2), (1, 1), (1, 2): the only 8^3 crop is the whole padded volume
    expected = np.pad(img, [(2, 2), (1, 1), (1, 2)], mode="edge")
    for k in range(3):
        np.testing.assert_array_equal(images[k, 0], expected)
        inside = np.zeros((8, 8, 8), bool)
        inside[2:6, 1:7, 1:6] = True
        assert (labels[k][~inside] == IGNORE_INDEX).all()  # padded voxels are not annotated
        assert (labels[k][inside] == 0).all()
    np.testing.assert_array_equal(sampler.sample_unlabelled(1)[0, 0], expected)
