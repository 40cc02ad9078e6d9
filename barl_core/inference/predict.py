"""Whole-volume prediction on the input's exact grid: :func:`predict_volume`.

Does what training did (working spacing, normalisation), runs
:func:`~barl_core.inference.window.sliding_window` and maps the class map and the
disagreement back onto the input's grid.

Example
-------
>>> model = load_model("run/model.pt")                         # doctest: +SKIP
>>> pred = predict_volume(model, read_volume("case.nii.gz"))   # doctest: +SKIP
>>> pred.labels.dtype, pred.disagreement.dtype                 # doctest: +SKIP
(dtype('uint8'), dtype('float16'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from barl_core.data.normalization import NormStats
from barl_core.data.resample import needs_resampling, resample_volume
from barl_core.errors import InvalidVolumeError
from barl_core.inference.memory import (
    MEMORY_HEADROOM,
    InsufficientMemoryError,
    available_memory,
    estimate_memory,
    prediction_memory,
)
from barl_core.inference.model import LoadedModel, load_model
from barl_core.inference.regrid import to_input_grid
from barl_core.inference.window import (
    SlidingWindowResult,
    WindowProgress,
    gaussian_importance,
    js_disagreement,
    normalized_entropy,
    sliding_window,
    window_starts,
)
from barl_core.io.volume import Volume, all_finite

__all__ = [
    "Prediction",
    "predict_volume",
    "predict_slab",
    # re-exported so that ``from barl_core.inference.predict import load_model, predict_volume``
    # keeps working across the package split
    "LoadedModel",
    "load_model",
    "InsufficientMemoryError",
    "available_memory",
    "estimate_memory",
    "prediction_memory",
    "SlidingWindowResult",
    "sliding_window",
    "gaussian_importance",
    "window_starts",
    "js_disagreement",
    "normalized_entropy",
]


@dataclass
class Prediction:
    """A prediction on the input volume's exact grid.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 class map ``(z, y, x)``.
    disagreement : numpy.ndarray
        float16 in ``[0, 1]``: Jensen-Shannon divergence between the branches' softmax / log 2
        (normalised entropy for one-branch models).
    probabilities : numpy.ndarray or None
        float16 ``[C, z, y, x]`` mean softmax of the branches, on request.
    entropy : numpy.ndarray or None
        float16 normalised entropy of the mean softmax, on request.
    class_names : tuple of str
    z_range : (int, int) or None
        For :func:`predict_slab`: the input z-slices ``[lo, hi)`` the arrays cover (their
        first axis has ``hi - lo`` slices); None for a whole volume.
    slice_features : numpy.ndarray or None
        float32 ``[n_slices, n_branches * base_channels]``, on request: per axial slice of the
        input, each branch's last decoder map averaged over the slice (see
        :func:`sliding_window`); the feature space the ``focused`` ranking's coverage uses.
    """

    labels: np.ndarray
    disagreement: np.ndarray
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    z_range: tuple[int, int] | None = None
    slice_features: np.ndarray | None = None


def _check_volume(volume: Volume) -> np.ndarray:
    arr = np.asarray(volume.array)
    if arr.ndim != 3 or arr.size == 0:
        raise InvalidVolumeError(f"expected a non-empty 3D volume, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise InvalidVolumeError(f"cannot predict a volume of dtype {arr.dtype}")
    if not all_finite(arr):
        raise InvalidVolumeError("the volume holds NaN/Inf voxels; clean it before predicting")
    return arr


def predict_volume(
    model: LoadedModel,
    volume: Volume,
    *,
    return_probabilities: bool = False,
    return_entropy: bool = False,
    return_features: bool = False,
    progress: WindowProgress | None = None,
    cancel: Any = None,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    window: Sequence[int] | None = None,
    check_memory: bool = True,
    precision: str = "auto",
) -> Prediction:
    """Segment ``volume`` and map every output back onto its exact grid.

    Does what training did: resample to the checkpoint's ``target_spacing`` (the plan's working
    resolution, if any), normalise as recorded (fixed statistics or the volume's own), then
    :func:`sliding_window`; labels return by nearest neighbour, disagreement (and
    probabilities/entropy) linearly.

    Parameters
    ----------
    model : LoadedModel
    volume : Volume
    return_probabilities, return_entropy : bool
        Extra float16 outputs (probabilities cost ``C`` half-precision volumes).
    return_features : bool
        Per-slice pooled decoder features (``Prediction.slice_features``, a few floats per
        slice), taken from the same forward pass; at a working spacing they are interpolated
        linearly along z onto the input's slices.
    progress : callable, optional
        ``progress(windows_done, windows_total)``.
    cancel : CancelToken, Event or callable, optional
    overlap, sw_batch_size, window, precision
        See :func:`sliding_window`.
    check_memory : bool
        Refuse early when :func:`estimate_memory` exceeds the available RAM.

    Raises
    ------
    InvalidVolumeError
        Not 3D, empty, or NaN/Inf voxels.
    InsufficientMemoryError
        The machine does not have the memory this prediction needs.
    CancelledError
        ``cancel`` was set.
    """
    _check_volume(volume)
    if check_memory:
        need = prediction_memory(model, volume, window=window, sw_batch_size=sw_batch_size,
                                 return_probabilities=return_probabilities)
        have = available_memory()
        if have is not None and need > MEMORY_HEADROOM * have:
            raise InsufficientMemoryError(
                f"predicting a volume of shape {volume.shape} needs about {need / 2**30:.1f} GiB of "
                f"memory but only {have / 2**30:.1f} GiB are available; close other programs, "
                "predict on a machine with more memory, or train with a coarser target spacing"
            )
    return _predict(model, volume, None, window=window, overlap=overlap, sw_batch_size=sw_batch_size,
                    return_probabilities=return_probabilities, return_entropy=return_entropy,
                    return_features=return_features, progress=progress, cancel=cancel,
                    precision=precision)


def predict_slab(
    model: LoadedModel,
    volume: Volume,
    z_range: tuple[int, int],
    **kwargs: Any,
) -> Prediction:
    """Predict only the z-slices ``[lo, hi)`` of ``volume``: the current slice's proposal first.

    The app calls this for the slice the radiologist is looking at (a few seconds), shows it,
    then fills in the rest with :func:`predict_volume` behind it. Only the rows of windows
    that touch those slices run, but they are the *same* windows, weights and normalisation
    statistics as the whole-volume pass, so the slab equals that pass on its slices: the
    proposal does not change when the rest arrives. At a working spacing the whole volume is
    resampled (seconds) and the working slices under the slab, one more each side for the
    interpolation, are predicted and mapped back.

    Parameters
    ----------
    model : LoadedModel
    volume : Volume
    z_range : (int, int)
        Input z-slices ``[lo, hi)``, ``0 <= lo < hi <= Z``.
    **kwargs
        ``window``, ``overlap``, ``sw_batch_size``, ``precision``, ``return_probabilities``,
        ``return_entropy``, ``return_features``, ``progress``, ``cancel`` as for
        :func:`predict_volume`.

    Returns
    -------
    Prediction
        Arrays of ``hi - lo`` slices and ``z_range=(lo, hi)``.
    """
    arr = _check_volume(volume)
    lo, hi = (int(v) for v in z_range)
    if not 0 <= lo < hi <= arr.shape[0]:
        raise InvalidVolumeError(f"z_range {z_range} is not within the volume's {arr.shape[0]} slices")
    pred = _predict(model, volume, None, z_range=(lo, hi), **kwargs)
    pred.z_range = (lo, hi)
    return pred


def _z_crop(volume: Volume, a: int, b: int) -> Volume:
    """Slices ``[a, b)`` of ``volume`` as a volume with the same physical placement."""
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    origin = np.asarray(volume.origin, dtype=float) + d[:, 2] * (a * float(volume.spacing[0]))
    return Volume(volume.array[a:b], spacing=volume.spacing, origin=tuple(float(o) for o in origin),
                  direction=volume.direction)


def _predict(model: LoadedModel, volume: Volume, stats: NormStats | None, *,
             z_range: tuple[int, int] | None = None, **kwargs: Any) -> Prediction:
    """Resample, normalise, slide and map back to the input grid.

    Normalisation uses ``stats``, else what training did; the window slides over the z-slices
    ``z_range`` of the input only, if given.
    """
    target = model.target_spacing
    resample = needs_resampling(volume, target)
    work = resample_volume(volume, target) if resample else volume
    if stats is None:
        stats = model.norm_stats_for(work.array)
    reference, w_range = volume, z_range
    if z_range is not None:
        reference = _z_crop(volume, *z_range)
        if resample:  # the working slices an input slice interpolates from, and one more each side
            scale = float(volume.spacing[0]) / float(target[0])
            w_range = (max(0, math.floor(z_range[0] * scale) - 1),
                       min(work.shape[0], math.ceil((z_range[1] - 1) * scale) + 2))
    res = _run_window(model, work.array, stats, z_range=w_range, **kwargs)
    del work  # a resampled copy is no longer needed
    if resample:  # back onto the input grid a slab at a time (see regrid)
        d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        first = w_range[0] if w_range is not None else 0
        origin = np.asarray(volume.origin, dtype=float) + d[:, 2] * (first * float(target[0]))
        geom = {"spacing": list(target), "origin": [float(o) for o in origin], "direction": list(volume.direction)}
        labels = to_input_grid(res.labels, geom, reference, is_label=True, default_value=0)
        dis = to_input_grid(res.disagreement, geom, reference, is_label=False)
        probs = None
        if res.probabilities is not None:
            probs = np.empty((res.probabilities.shape[0], *reference.shape), dtype=res.probabilities.dtype)
            for k, p in enumerate(res.probabilities):
                probs[k] = to_input_grid(p, geom, reference, is_label=False)
        ent = to_input_grid(res.entropy, geom, reference, is_label=False) if res.entropy is not None else None
        feats = None
        if res.slice_features is not None:
            lo_in = z_range[0] if z_range is not None else 0
            scale = float(volume.spacing[0]) / float(target[0])
            feats = _features_along_z(res.slice_features, (lo_in + np.arange(reference.shape[0])) * scale - first)
        res = SlidingWindowResult(labels, dis, probs, ent, feats)
    dis = res.disagreement.astype(np.float16, copy=False)
    np.clip(dis, 0, 1, out=dis)  # in place: interpolation keeps [0, 1] up to rounding
    return Prediction(
        labels=res.labels.astype(np.uint8, copy=False),
        disagreement=dis,
        probabilities=res.probabilities,
        entropy=res.entropy,
        class_names=model.class_names,
        slice_features=res.slice_features,
    )


def _features_along_z(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Interpolate per-slice features of the working grid at fractional slice ``positions``.

    Linear, clamped to the grid's ends; float32 ``[len(positions), F]``.
    """
    src = np.arange(features.shape[0], dtype=np.float64)
    return np.stack([np.interp(positions, src, features[:, f]) for f in range(features.shape[1])],
                    axis=1).astype(np.float32)


def _run_window(model: LoadedModel, image: np.ndarray, stats: NormStats, *, sw_batch_size: int = 1,
                **kwargs: Any) -> SlidingWindowResult:
    """:func:`sliding_window`, retried with one window per batch on CUDA out of memory."""
    try:
        return sliding_window(model, image, sw_batch_size=sw_batch_size, norm=stats, **kwargs)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        if sw_batch_size > 1:
            try:
                return sliding_window(model, image, sw_batch_size=1, norm=stats, **kwargs)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
        window = kwargs.get("window")
        raise InsufficientMemoryError(
            f"out of GPU memory predicting with window {tuple(window or model.patch_size)}; "
            "predict on the CPU (--device cpu) or use a smaller window"
        ) from None
