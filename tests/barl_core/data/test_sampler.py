"""The patch sampler and the training volumes it samples from."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.dataset import Case
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.sampler import PatchSampler, TrainingVolume, training_volumes
from barl_core.errors import EmptyDatasetError
from barl_core.io.volume import Volume
from tests.barl_core.data.conftest import sparse_labels

# ---------------------------------------------------------------- annotation status

def test_labelled_patches_contain_annotated_slices(rng):
    shape = (40, 24, 24)
    lab = np.full(shape, IGNORE_INDEX, np.uint8)
    lab[[5, 20, 33]] = 0
    lab[20, 10:14, 10:14] = 2
    img = rng.normal(size=shape).astype(np.float32)
    sampler = PatchSampler([TrainingVolume(img, lab, "a")], (8, 16, 16), np.random.default_rng(1))
    images, labels = sampler.sample_labelled(30)
    assert images.shape == (30, 1, 8, 16, 16) and images.dtype == np.float32
    assert labels.shape == (30, 8, 16, 16) and labels.dtype == np.int64
    for patch in labels:
        annotated = (patch != IGNORE_INDEX).reshape(8, -1)
        rows = np.flatnonzero(annotated.any(axis=1))
        assert rows.size >= 1  # a whole labelled slice (within the crop) is in the patch
        assert annotated[rows].all()
    assert (labels == 2).any()  # foreground oversampling finds the small class
    # patches are real crops of the volume
    z = int(np.flatnonzero((labels[0] != IGNORE_INDEX).any(axis=(1, 2)))[0])
    assert np.isin(images[0, 0, z], img).all()

def test_unlabelled_patches_come_from_all_volumes_and_small_volumes_are_padded():
    a = TrainingVolume(np.zeros((6, 6, 6), np.float32), sparse_labels((6, 6, 6), (1, 3)), "a")
    b = TrainingVolume(np.ones((20, 20, 20), np.float32), None, "b")
    sampler = PatchSampler([a, b], (8, 8, 8), 0)
    u = sampler.sample_unlabelled(40)
    assert u.shape == (40, 1, 8, 8, 8)
    means = u.reshape(40, -1).mean(axis=1)
    assert (means == 1.0).any() and (means < 1.0).any()  # both volumes are drawn
    images, labels = sampler.sample_labelled(5)
    # only "a" is annotated; it is 6^3 and padded to 8^3 with ignore labels
    assert (labels == IGNORE_INDEX).reshape(5, -1).sum(axis=1).min() >= 8**3 - 6**3
    assert sampler.n_labelled_volumes == 1

def test_sampler_is_deterministic_and_refuses_no_annotations():
    vols = [
        TrainingVolume(
            np.arange(1000, dtype=np.float32).reshape(10, 10, 10), sparse_labels((10, 10, 10), (4,)), "a"
        )
    ]
    x1, y1 = PatchSampler(vols, (4, 4, 4), 3).sample_labelled(6)
    x2, y2 = PatchSampler(vols, (4, 4, 4), 3).sample_labelled(6)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    empty = PatchSampler([TrainingVolume(np.zeros((5, 5, 5), np.float32), None, "u")], (4, 4, 4), 0)
    with pytest.raises(EmptyDatasetError):
        empty.sample_labelled(1)
    with pytest.raises(EmptyDatasetError):
        PatchSampler([], (4, 4, 4), 0)

def test_training_volumes_normalise_and_drop_empty_labels(rng):
    vol = Volume(rng.normal(500, 100, size=(6, 6, 6)).astype(np.float32))
    cases = [
        Case("a", vol, sparse_labels((6, 6, 6), (2,)), None, None),  # type: ignore[arg-type]
        Case("b", vol, np.full((6, 6, 6), 255, np.uint8), None, None),  # type: ignore[arg-type]
    ]
    tv = training_volumes(cases)
    assert abs(float(tv[0].image.mean())) < 0.1
    assert tv[0].labels is not None and tv[1].labels is None
