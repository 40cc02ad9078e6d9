"""Sliding window: exact against naive blending, any size, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from barl_core.inference.antialias import antialias
from barl_core.inference.model import autocast_dtype
from barl_core.inference.window import (
    gaussian_importance,
    js_disagreement,
    sliding_window,
    window_starts,
)
from tests.barl_core.inference.conftest import CFG, WINDOW, softmax_pair


def _reference(net, image: np.ndarray, window, overlap):
    """Naive full-volume Gaussian blending (no ring buffer, no slabs) to compare against."""
    g = gaussian_importance(window)
    starts = [window_starts(n, w, overlap, 4) for n, w in zip(image.shape, window, strict=True)]  # divisor 4
    acc = np.zeros((2, CFG.num_classes, *image.shape), np.float64)
    wsum = np.zeros(image.shape, np.float64)
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                sl = (slice(z, z + window[0]), slice(y, y + window[1]), slice(x, x + window[2]))
                pa, pb = softmax_pair(net, np.ascontiguousarray(image[sl]))
                acc[(0, slice(None), *sl)] += pa.numpy() * g
                acc[(1, slice(None), *sl)] += pb.numpy() * g
                wsum[sl] += g
    p = acc / wsum
    return p[0], p[1]


def test_single_window_equals_direct_forward(net, model, rng):
    image = rng.standard_normal(WINDOW).astype(np.float32)
    res = sliding_window(model, image, return_probabilities=True, precision="float32")
    pa, pb = softmax_pair(net, image)
    mean = ((pa + pb) / 2).numpy()
    assert np.abs(res.probabilities.astype(np.float32) - mean).max() < 2e-3  # float16 storage
    assert (res.labels == mean.argmax(0)).mean() > 0.99
    dis = antialias(js_disagreement(pa, pb).numpy())
    assert np.abs(res.disagreement.astype(np.float32) - dis).max() < 2e-3


def test_overlapping_windows_match_naive_blending(net, model, rng):
    image = rng.standard_normal((20, 24, 20)).astype(np.float32)
    res = sliding_window(model, image, overlap=0.5, sw_batch_size=3, return_probabilities=True,
                         precision="float32")
    pa, pb = _reference(net, image, WINDOW, 0.5)
    mean = (pa + pb) / 2
    assert np.abs(res.probabilities.astype(np.float32) - mean).max() < 2e-3
    agree = res.labels == mean.argmax(0)
    assert agree.mean() > 0.995
    ref_dis = antialias(js_disagreement(torch.from_numpy(pa), torch.from_numpy(pb)).numpy())
    assert np.abs(res.disagreement.astype(np.float32) - ref_dis).max() < 4e-3  # float16 sums


@pytest.mark.parametrize("shape", [(3, 5, 7), (9, 13, 11), (17, 12, 30), (8, 12, 12)])
def test_any_size(model, rng, shape):
    image = rng.standard_normal(shape).astype(np.float32)
    progress = []
    res = sliding_window(model, image, progress=lambda d, t: progress.append((d, t)))
    assert res.labels.shape == shape and res.labels.dtype == np.uint8
    assert res.disagreement.shape == shape and res.disagreement.dtype == np.float16
    assert 0.0 <= float(res.disagreement.min()) and float(res.disagreement.max()) <= 1.0
    assert res.labels.max() < CFG.num_classes
    assert progress and progress[-1][0] == progress[-1][1]




def test_bfloat16_close_to_float32_and_precision_choice(model, rng):
    """bfloat16 autocast (the CPU default where it is native) stays close to float32."""
    image = rng.standard_normal((16, 20, 20)).astype(np.float32)
    ref = sliding_window(model, image, return_probabilities=True, precision="float32")
    low = sliding_window(model, image, return_probabilities=True, precision="bfloat16")
    diff = np.abs(low.probabilities.astype(np.float32) - ref.probabilities.astype(np.float32))
    assert diff.max() < 0.05 and diff.mean() < 0.01
    assert autocast_dtype("float32", torch.device("cpu")) is None
    assert autocast_dtype("auto", torch.device("cuda")) is torch.float16
    assert autocast_dtype("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="CUDA"):
        autocast_dtype("float16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        sliding_window(model, image, precision="int8")
