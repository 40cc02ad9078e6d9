"""Prediction that keeps what agreement-gated proposals need: a per-voxel agreement confidence.

:func:`barl_core.inference.predict.predict_volume` returns the class map and the branches'
disagreement (Jensen-Shannon divergence). A *proposal* must be stricter: a voxel is
proposed only where **both** branches pick the same class (argmax equal) **and** both are
sure of it. That needs each branch's softmax, which the blended prediction does not keep,
so here each branch runs as its own one-branch model (same weights, same windows, same
normalisation: the same forward compute as one two-branch pass) and the two softmax maps
are combined slice block by slice block:

- ``labels``: argmax of the branches' mean softmax (as :func:`predict_volume`);
- ``disagreement``: Jensen-Shannon / log 2 between the branches, low-passed by
  :func:`~barl_core.inference.antialias.antialias` (as :func:`predict_volume`; here on the
  input grid, after the probabilities were mapped back to it);
- ``confidence``: ``min(p_a[k], p_b[k])`` where both argmaxes equal ``k``, else 0 (float16).

A one-branch model (``supervised``) has no second opinion: its confidence is its own
maximum probability.

With ``return_features``, each branch's pass also pools its last decoder map per slice
(:func:`~barl_core.inference.predict.predict_volume`'s ``slice_features``); the two are
concatenated, branch a first, which is what the two-branch pass returns (the same windows and
Gaussian weights), so the ``focused`` ranking sees the same feature space as the benchmark.

Files: :func:`barl_core.inference.export.predict_files` with ``agreement=True`` writes
``NAME.nii.gz``, ``NAME_disagreement.nii.gz`` and ``NAME_confidence.npz`` (float16, array
``confidence``), with ``features=True`` also ``NAME_features.npz`` (:func:`save_features`); the GUI runs it off its process with :class:`barl_core.runtime.jobs.PredictJob`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.io.volume import Volume

__all__ = [
    "AgreementPrediction",
    "predict_with_agreement",
    "agreement_maps",
    "save_confidence",
    "load_confidence",
    "save_features",
    "load_features",
]



@dataclass
class AgreementPrediction:
    """Class map, disagreement and agreement confidence on the input grid."""

    labels: np.ndarray
    disagreement: np.ndarray
    confidence: np.ndarray
    slice_features: np.ndarray | None = None


def agreement_maps(
    pa: np.ndarray, pb: np.ndarray, chunk: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine two branches' softmax ``[C, z, y, x]`` into (labels, disagreement, confidence).

    Processed a few z-slices at a time so that no float32 copy of the full maps is made;
    the disagreement is anti-aliased as :func:`~barl_core.inference.window.sliding_window`'s.
    """
    import torch

    from barl_core.inference.antialias import antialias
    from barl_core.inference.window import js_disagreement

    shape = pa.shape[1:]
    labels = np.empty(shape, np.uint8)
    dis = np.empty(shape, np.float16)
    conf = np.empty(shape, np.float16)
    for z0 in range(0, shape[0], chunk):
        sl = slice(z0, z0 + chunk)
        a = torch.from_numpy(np.asarray(pa[:, sl], np.float32))
        b = torch.from_numpy(np.asarray(pb[:, sl], np.float32))
        labels[sl] = ((a + b) / 2).argmax(0).to(torch.uint8).numpy()
        dis[sl] = js_disagreement(a, b).to(torch.float16).numpy()
        ka, kb = a.argmax(0), b.argmax(0)
        pka = a.gather(0, ka[None])[0]
        pkb = b.gather(0, ka[None])[0]
        c = torch.where(ka == kb, torch.minimum(pka, pkb), torch.zeros_like(pka))
        conf[sl] = c.to(torch.float16).numpy()
    antialias(dis)  # as predict_volume's map: without the network's stride-2 checkerboard
    return labels, dis, conf


def _branch_model(model: Any, branch: Any) -> Any:
    return replace(model, module=branch, metadata=dict(model.metadata, n_branches=1))


def predict_with_agreement(
    model: Any,
    volume: Volume,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Any = None,
    return_features: bool = False,
    **predict_kwargs: Any,
) -> AgreementPrediction:
    """Predict ``volume`` with ``model`` (a :class:`~barl_core.inference.model.LoadedModel`).

    Parameters
    ----------
    model : LoadedModel
    volume : Volume
    progress : callable, optional
        ``progress(done, total)`` over the windows of both passes.
    cancel : CancelToken, Event or callable, optional
    return_features : bool
        Also per-slice pooled decoder features (``slice_features``, float32 ``[n_slices,
        n_branches * base_channels]``), from the passes that already run.
    **predict_kwargs
        Passed on to :func:`~barl_core.inference.predict.predict_volume` (``overlap``,
        ``sw_batch_size``...).
    """
    from barl_core.inference.predict import predict_volume

    if model.n_branches == 1:
        pred = predict_volume(
            model, volume, return_probabilities=True, progress=progress, cancel=cancel,
            return_features=return_features, **predict_kwargs,
        )
        conf = pred.probabilities.max(0).astype(np.float16)
        return AgreementPrediction(pred.labels, pred.disagreement.astype(np.float16), conf,
                                   pred.slice_features)
    probs, feats = [], []
    for i, branch in enumerate((model.module.branch_a, model.module.branch_b)):

        def step(done: int, total: int, _i: int = i) -> None:
            if progress is not None:
                progress(_i * total + done, 2 * total)

        pred = predict_volume(
            _branch_model(model, branch),
            volume,
            return_probabilities=True,
            progress=step,
            cancel=cancel,
            return_features=return_features,
            **predict_kwargs,
        )
        probs.append(pred.probabilities)
        feats.append(pred.slice_features)
    labels, dis, conf = agreement_maps(probs[0], probs[1])
    features = np.concatenate(feats, axis=1) if return_features else None
    return AgreementPrediction(labels, dis, conf, features)


def _save_npz(path: str | os.PathLike, key: str, array: np.ndarray) -> Path:
    """Write one array as a compressed ``.npz`` atomically (never a partial file)."""
    from barl_core.io.volume import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{key: array})
    return path


def save_confidence(path: str | os.PathLike, confidence: np.ndarray) -> Path:
    """Write a float16 confidence map atomically (compressed ``.npz``)."""
    return _save_npz(path, "confidence", np.asarray(confidence, np.float16))


def save_features(path: str | os.PathLike, features: np.ndarray) -> Path:
    """Write per-slice features (float32 ``[n_slices, F]``) atomically (compressed ``.npz``).

    A few floats per slice: what lets the app's ``focused`` ranking weigh a slice by how unlike
    the annotated ones it is, without predicting again.
    """
    arr = np.asarray(features, np.float32)
    if arr.ndim != 2:
        raise ValueError(f"per-slice features must be 2-D [n_slices, F], got shape {arr.shape}")
    return _save_npz(path, "features", arr)


def load_features(path: str | os.PathLike) -> np.ndarray:
    """Read what :func:`save_features` wrote (float32 ``[n_slices, F]``)."""
    with np.load(Path(path)) as data:
        return np.asarray(data["features"], np.float32)


def load_confidence(path: str | os.PathLike) -> np.ndarray:
    """Read the per-voxel agreement confidence from a ``NAME_confidence.npz`` output."""
    with np.load(Path(path)) as data:
        return data["confidence"]
