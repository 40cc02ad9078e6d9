"""Training and prediction pad a volume smaller than the patch alike (issue 11).

The sampler used to pad with the volume's minimum and the sliding window with edge values,
so a whole-volume patch trained on a border prediction never showed the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from barl_core.data import padding
from barl_core.data.dataset import Case
from barl_core.data.normalization import compute_norm_stats
from barl_core.data.sampler import PatchSampler, training_volumes
from barl_core.inference.model import LoadedModel
from barl_core.inference.window import sliding_window
from barl_core.io.volume import Volume
from tests.barl_core.inference.conftest import WINDOW


def _fed_windows(net, image, **kwargs) -> list[np.ndarray]:
    """Every window the sliding window hands the network, ``(z, y, x)`` float32 each."""
    model = LoadedModel.from_module(net, patch_size=WINDOW)
    seen: list[np.ndarray] = []
    forward = model.branch_logits

    def recording(x: torch.Tensor):
        seen.extend(w[0].numpy().copy() for w in x.cpu())
        return forward(x)

    model.branch_logits = recording  # type: ignore[method-assign]
    sliding_window(model, image, precision="float32", **kwargs)
    return seen


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_training_patch_is_what_prediction_feeds_the_network(net, rng, monkeypatch, mode):
    # "reflect" is not the project's rule: it shows that both paths read the one constant
    monkeypatch.setattr(padding, "IMAGE_PAD_MODE", mode)
    # smaller than the 8x12x12 patch on every axis; the window (divisor 4) stays 8x12x12,
    # so prediction runs one window, centred as the sampler centres the volume
    shape = (6, 10, 9)
    raw = (500 + 100 * rng.standard_normal(shape)).astype(np.float32)
    raw[:, :, -1] += 400  # a bright edge: a minimum fill would differ from it the most
    vol = training_volumes([Case("small", Volume(raw), None, None, None)])[0]  # type: ignore[arg-type]
    patch = PatchSampler([vol], WINDOW, 0).sample_unlabelled(1)[0, 0]

    # prediction as `barl predict` runs it: raw volume, each window normalised on the fly
    fed = _fed_windows(net, raw, norm=compute_norm_stats(raw))
    assert len(fed) == 1 and fed[0].shape == WINDOW
    np.testing.assert_allclose(fed[0], patch, atol=1e-5)
    # and as validation runs it: the already normalised training volume
    fed = _fed_windows(net, np.asarray(vol.image))
    assert len(fed) == 1
    np.testing.assert_allclose(fed[0], patch, atol=1e-5)
