"""predict_volume: disagreement semantics, the input's grid, refusal of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from barl_core.errors import CancelledError, InvalidVolumeError
from barl_core.inference.model import LoadedModel
from barl_core.inference.predict import predict_slab, predict_volume
from barl_core.inference.window import sliding_window
from barl_core.io.volume import Volume
from barl_core.networks.unet import BiBranchNet, UNet3D
from tests.barl_core.inference.conftest import CFG, WINDOW


def test_disagreement_zero_for_identical_branches_positive_otherwise(rng):
    vol = Volume(rng.normal(100, 30, (10, 14, 13)).astype(np.float32))
    same = LoadedModel.from_module(BiBranchNet(CFG, shared_init=True), patch_size=WINDOW)
    assert float(np.abs(predict_volume(same, vol).disagreement).max()) == 0.0
    torch.manual_seed(1)
    different = LoadedModel.from_module(BiBranchNet(CFG), patch_size=WINDOW)
    dis = predict_volume(different, vol).disagreement.astype(np.float32)
    assert dis.mean() > 1e-3
    # one branch: normalised entropy of its softmax
    single = LoadedModel.from_module(UNet3D(CFG), patch_size=WINDOW)
    ent = predict_volume(single, vol).disagreement.astype(np.float32)
    assert ent.min() >= 0 and ent.max() <= 1 and ent.mean() > 0.01


def test_output_on_input_grid_with_target_spacing(net, rng):
    vol = Volume(
        rng.normal(0, 1, (11, 17, 15)).astype(np.float32),
        spacing=(0.9, 0.4, 0.45),
        origin=(-3.0, 2.5, 10.0),
        direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    )
    m = LoadedModel.from_module(net, patch_size=WINDOW, target_spacing=(0.6, 0.8, 0.8))
    pred = predict_volume(m, vol, return_probabilities=True, return_entropy=True)
    assert pred.labels.shape == vol.shape and pred.labels.dtype == np.uint8
    assert pred.disagreement.shape == vol.shape and pred.disagreement.dtype == np.float16
    assert pred.probabilities.shape == (3, *vol.shape) and pred.entropy.shape == vol.shape
    # resampling changes nothing when the target is the native spacing (exact path)
    native = LoadedModel.from_module(net, patch_size=WINDOW, target_spacing=vol.spacing)
    plain = LoadedModel.from_module(net, patch_size=WINDOW)
    np.testing.assert_array_equal(predict_volume(native, vol).labels, predict_volume(plain, vol).labels)


def test_cancel_and_bad_input(model, rng):
    vol = Volume(rng.standard_normal((16, 24, 24)).astype(np.float32))
    with pytest.raises(CancelledError):
        predict_volume(model, vol, cancel=lambda: True)
    bad = vol.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InvalidVolumeError, match="NaN"):
        predict_volume(model, Volume(bad))
    with pytest.raises(InvalidVolumeError):
        sliding_window(model, np.zeros((4, 4), np.float32))




def test_slab_equals_whole_volume_on_its_slices(net, rng):
    """predict_slab runs only the windows touching the slab, yet equals the whole-volume pass
    there (same windows, weights, statistics), native and at a working spacing; bad ranges are
    refused.
    """
    vol = Volume(rng.normal(100, 30, (40, 16, 16)).astype(np.float32), spacing=(2.0, 1.0, 1.0),
                 origin=(5.0, -2.0, 7.0), direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    m = LoadedModel.from_module(net, patch_size=WINDOW)
    whole = predict_volume(m, vol, return_probabilities=True, precision="float32")
    seen = []
    slab = predict_slab(m, vol, (10, 13), return_probabilities=True, precision="float32",
                        progress=lambda d, t: seen.append(t))
    assert slab.z_range == (10, 13) and slab.labels.shape == (3, 16, 16)
    np.testing.assert_array_equal(slab.labels, whole.labels[10:13])
    np.testing.assert_array_equal(slab.disagreement, whole.disagreement[10:13])
    np.testing.assert_array_equal(slab.probabilities, whole.probabilities[:, 10:13])
    n_whole = []
    predict_volume(m, vol, precision="float32", progress=lambda d, t: n_whole.append(t))
    assert seen[-1] < n_whole[-1] / 2  # only the rows of windows over the slab ran
    # at a working spacing (2 mm -> 3 mm along z): the working slices under the slab, mapped back
    coarse = LoadedModel.from_module(net, patch_size=WINDOW, target_spacing=(3.0, 1.0, 1.0))
    whole_c = predict_volume(coarse, vol, precision="float32")
    for lo, hi in ((0, 2), (17, 18), (35, 40)):
        part = predict_slab(coarse, vol, (lo, hi), precision="float32")
        np.testing.assert_array_equal(part.labels, whole_c.labels[lo:hi])
        np.testing.assert_array_equal(part.disagreement, whole_c.disagreement[lo:hi])
    for bad in ((5, 5), (-1, 3), (30, 41)):
        with pytest.raises(InvalidVolumeError, match="z_range"):
            predict_slab(m, vol, bad)
