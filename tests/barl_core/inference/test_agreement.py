"""Agreement maps and prediction with agreement confidence."""

from __future__ import annotations

import numpy as np

from barl_core.inference.agreement import agreement_maps, predict_with_agreement
from barl_core.io.volume import Volume


def test_agreement_maps_require_both_branches():
    pa = np.zeros((2, 1, 1, 3), np.float16)
    pb = np.zeros_like(pa)
    pa[:, 0, 0, 0], pb[:, 0, 0, 0] = (0.05, 0.95), (0.1, 0.9)  # agree, sure
    pa[:, 0, 0, 1], pb[:, 0, 0, 1] = (0.4, 0.6), (0.6, 0.4)  # argmax differs
    pa[:, 0, 0, 2], pb[:, 0, 0, 2] = (0.2, 0.8), (0.3, 0.7)  # agree, less sure
    labels, dis, conf = agreement_maps(pa, pb)
    np.testing.assert_allclose(conf[0, 0].astype(float), [0.9, 0.0, 0.7], atol=1e-3)
    assert labels[0, 0, 0] == 1 and dis[0, 0, 1] > dis[0, 0, 0]

def test_predict_with_agreement_matches_predict_volume(rng):
    import torch

    from barl_core.inference.predict import LoadedModel, predict_volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig

    torch.manual_seed(0)
    net = BiBranchNet(NetworkConfig(num_classes=3, base_channels=4, depth=2, proj_dim=8))
    m = LoadedModel.from_module(net, patch_size=(8, 16, 16))
    vol = Volume(rng.normal(size=(8, 16, 16)).astype(np.float32))
    ref = predict_volume(m, vol)
    res = predict_with_agreement(m, vol)
    assert (res.labels == ref.labels).mean() > 0.99
    np.testing.assert_allclose(
        res.disagreement.astype(float), ref.disagreement.astype(float), atol=2e-3
    )
    assert (
        res.confidence.dtype == np.float16
        and 0 <= res.confidence.min() <= res.confidence.max() <= 1
    )
