"""Per-slice pooled decoder features: taken from the same forward pass, alike for alike slices."""

from __future__ import annotations

import numpy as np

from barl_core.inference.model import LoadedModel
from barl_core.inference.predict import predict_slab, predict_volume
from barl_core.io.volume import Volume
from tests.barl_core.inference.conftest import CFG, WINDOW


def _count_calls(module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_features_come_from_the_same_pass_and_change_nothing_else(net, rng):
    vol = Volume(rng.normal(100, 30, (20, 14, 13)).astype(np.float32))
    m = LoadedModel.from_module(net, patch_size=WINDOW)
    calls = _count_calls(net.branch_a.stem)
    plain = predict_volume(m, vol, precision="float32")
    n_plain = calls[0]
    with_f = predict_volume(m, vol, precision="float32", return_features=True)
    assert calls[0] - n_plain == n_plain  # as many forwards: no second pass
    assert plain.slice_features is None
    np.testing.assert_array_equal(with_f.labels, plain.labels)
    np.testing.assert_array_equal(with_f.disagreement, plain.disagreement)
    f = with_f.slice_features
    assert f.shape == (20, 2 * CFG.base_channels) and f.dtype == np.float32 and np.isfinite(f).all()


def test_slices_alike_in_the_image_are_alike_in_feature_space(net, rng):
    """Two kinds of slices (one noise pattern repeated along z, then the same pattern with a
    bright square): slices of one kind at the same place in their windows have (nearly) the
    same features, far from the other kind's."""
    arr = np.repeat(rng.normal(0, 1, (1, 16, 16)), 40, axis=0).astype(np.float32)
    arr[20:, 4:12, 4:12] += 6.0
    m = LoadedModel.from_module(net, patch_size=WINDOW)
    f = predict_volume(m, Volume(arr), precision="float32", return_features=True).slice_features
    # windows are 8 slices deep and start every 4 slices: slices 4 apart see the same windows
    a, b = f[4:13:4], f[28:37:4]  # away from the boundary at z 20

    def dist(p, q):
        return np.sqrt(((p[:, None] - q[None]) ** 2).sum(-1))

    assert max(dist(a, a).max(), dist(b, b).max()) < 0.05 * dist(a, b).min()


def test_slab_features_equal_the_whole_pass_and_follow_the_input_grid(net, rng):
    vol = Volume(rng.normal(100, 30, (40, 16, 16)).astype(np.float32), spacing=(2.0, 1.0, 1.0))
    m = LoadedModel.from_module(net, patch_size=WINDOW)
    whole = predict_volume(m, vol, precision="float32", return_features=True).slice_features
    slab = predict_slab(m, vol, (10, 13), precision="float32", return_features=True)
    np.testing.assert_allclose(slab.slice_features, whole[10:13], rtol=1e-6, atol=1e-6)
    # at a working spacing (2 mm -> 3 mm along z) there is one row per *input* slice, and the
    # slab's rows equal the whole volume's
    coarse = LoadedModel.from_module(net, patch_size=WINDOW, target_spacing=(3.0, 1.0, 1.0))
    whole_c = predict_volume(coarse, vol, precision="float32", return_features=True).slice_features
    assert whole_c.shape == (40, 2 * CFG.base_channels) and np.isfinite(whole_c).all()
    for lo, hi in ((0, 2), (17, 18), (35, 40)):
        part = predict_slab(coarse, vol, (lo, hi), precision="float32", return_features=True)
        np.testing.assert_allclose(part.slice_features, whole_c[lo:hi], rtol=1e-5, atol=1e-6)
