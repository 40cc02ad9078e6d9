"""Which slices, and which cases, to annotate next (active learning from branch disagreement).

Where BARL's two branches disagree, the model is unsure, and a human label there teaches it
most. This module turns a per-voxel disagreement map into a ranked list of slices of one
volume, and per-case scores into a ranked list of cases:

- a slice's score is the mean of its top 10 % voxels (``reduce="top"``, the default), so a
  small lesion the branches argue about is not drowned by a slice of agreed-on air; over the
  foreground only when a region is given;
- slices already annotated (any voxel not the ignore value) are never suggested;
- a diversity rule (non-maximum suppression) keeps suggestions at least ``min_gap`` slices
  apart, so the top five are not five neighbours showing the same anatomy;
- ``entropy`` (normalised entropy of the mean softmax) and ``random`` (a seeded permutation)
  are the baselines the benchmarks compare against;
- ``focused`` (the product's default, :data:`DEFAULT_STRATEGY`) delegates to
  :func:`barl_core.active.ranking.rank_slices`: disagreement on and near each predicted
  structure, class balance and coverage along z, with a one-line reason per pick. It needs the
  predicted class map (``predicted=``). For several cases at once, and for case ranking, call
  :mod:`barl_core.active.ranking` directly.

Example
-------
>>> dis = np.zeros((10, 4, 4), np.float32); dis[6] = 0.9; dis[2] = 0.5
>>> [s.index for s in suggest_slices(dis, top_k=2, min_gap=1)]
[6, 2]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from barl_core.data.labels import IGNORE_INDEX, annotated_mask
from barl_core.errors import InvalidVolumeError

__all__ = [
    "STRATEGIES",
    "STRATEGY_HELP",
    "DEFAULT_STRATEGY",
    "SliceSuggestion",
    "CaseSuggestion",
    "slice_scores",
    "annotated_slices",
    "suggest_slices",
    "case_score",
    "suggest_cases",
]

STRATEGIES = ("focused", "disagreement", "entropy", "random")
#: What each strategy does, in one line (``barl suggest --help`` lists them).
STRATEGY_HELP = {
    "focused": "disagreement on and near each predicted structure (every class), rare classes "
    "weighted up, spread along z and across cases; one-line reason per pick",
    "disagreement": "highest branch disagreement over the whole slice (top 10% of its voxels)",
    "entropy": "highest entropy of the branches' mean prediction",
    "random": "seeded random slices (the baseline)",
}
#: The strategy the CLI and the app use unless told otherwise (see docs/benchmarks.md section 2).
DEFAULT_STRATEGY = "focused"
#: Fraction of a slice's voxels averaged by ``reduce="top"``.
TOP_FRACTION = 0.1


@dataclass(frozen=True)
class SliceSuggestion:
    """A slice to annotate: its index along ``axis`` and its score (higher = annotate sooner).

    ``reason`` (one line) and ``uncertainty`` (the per-slice quantity of
    :func:`barl_core.active.focus.focus_profile`) are filled by the ``focused`` strategy.
    """

    index: int
    score: float
    axis: int = 0
    reason: str = ""
    uncertainty: float | None = None


@dataclass(frozen=True)
class CaseSuggestion:
    """A case to annotate next, its expected-gain score and how many slices it already has."""

    name: str
    score: float
    n_annotated: int = 0


def _check_axis(axis: int, ndim: int) -> int:
    if ndim != 3:
        raise InvalidVolumeError(f"expected a 3D map (z, y, x), got {ndim}D")
    if axis not in (0, 1, 2, -1, -2, -3):
        raise InvalidVolumeError(f"axis must be 0, 1 or 2, got {axis}")
    return axis % 3


def slice_scores(
    disagreement: np.ndarray,
    axis: int = 0,
    reduce: str = "top",
    *,
    region: np.ndarray | None = None,
    top_fraction: float = TOP_FRACTION,
) -> np.ndarray:
    """One score per slice along ``axis`` (float64).

    Parameters
    ----------
    disagreement : numpy.ndarray
        Per-voxel disagreement (or any uncertainty) ``(z, y, x)``.
    reduce : {"top", "mean"}
        ``top``: mean of the highest ``top_fraction`` of the slice's voxels (robust to large
        calm backgrounds); ``mean``: plain mean.
    region : numpy.ndarray of bool, optional
        Only these voxels count (e.g. predicted foreground, dilated); a slice without any
        region voxel scores 0.
    """
    d = np.asarray(disagreement)
    ax = _check_axis(axis, d.ndim)
    if reduce not in ("top", "mean"):
        raise InvalidVolumeError(f"reduce must be 'top' or 'mean', got {reduce!r}")
    if region is not None and np.shape(region) != d.shape:
        raise InvalidVolumeError(f"region of shape {np.shape(region)} does not match {d.shape}")
    n = d.shape[ax]
    out = np.zeros(n, dtype=np.float64)
    for i in range(n):
        values = np.take(d, i, axis=ax).astype(np.float64, copy=False).ravel()
        if region is not None:
            values = values[np.take(region, i, axis=ax).ravel().astype(bool)]
        if values.size == 0:
            continue
        if reduce == "mean":
            out[i] = values.mean()
        else:
            k = max(1, int(np.ceil(top_fraction * values.size)))
            out[i] = np.partition(values, values.size - k)[values.size - k :].mean()
    return out


def annotated_slices(
    labels: np.ndarray | None, axis: int = 0, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Boolean per slice: True where the slice holds any voxel other than ``ignore_index``."""
    return annotated_mask(labels, axis, ignore_index)


def _entropy_map(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float32)
    c = p.shape[0]
    if c < 2:
        return np.zeros(p.shape[1:], dtype=np.float32)
    h = -(p * np.log(np.clip(p, 1e-7, 1.0))).sum(0)
    return np.clip(h / np.log(c), 0.0, 1.0)


def suggest_slices(
    disagreement_or_uncertainty: np.ndarray | None,
    labels: np.ndarray | None = None,
    *,
    axis: int = 0,
    top_k: int = 5,
    min_gap: int = 2,
    strategy: str = "disagreement",
    ignore_index: int = IGNORE_INDEX,
    rng: np.random.Generator | int | None = None,
    probabilities: np.ndarray | None = None,
    reduce: str = "top",
    region: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
    num_classes: int | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> list[SliceSuggestion]:
    """Rank the unannotated slices of one volume, best first.

    Parameters
    ----------
    disagreement_or_uncertainty : numpy.ndarray
        ``(z, y, x)`` disagreement map (strategy ``disagreement``), or an uncertainty map such
        as ``Prediction.entropy`` (strategy ``entropy`` without ``probabilities``). Only its
        shape is used by ``random``.
    labels : numpy.ndarray, optional
        The sparse label map; a slice holding any voxel other than ``ignore_index`` is
        annotated and never suggested.
    axis : int
        Slicing axis (0 = axial z).
    top_k : int
        How many suggestions at most.
    min_gap : int
        Two suggestions are at least this many slices apart (``|i - j| >= min_gap``); 0 or 1
        switch the diversity rule off.
    strategy : {"focused", "disagreement", "entropy", "random"}
        ``focused`` needs ``predicted`` (see :func:`barl_core.active.ranking.rank_slices`;
        ``min_gap`` is its no-pick distance, ``reduce``/``region`` do not apply). ``entropy`` scores with the normalised entropy of ``probabilities`` (mean softmax,
        ``[C, z, y, x]``) when given; ``random`` draws a seeded permutation (scores are
        uniform draws, so they remain comparable across cases).
    rng : numpy.random.Generator or int, optional
        Seed or generator for ``random`` (default seed 0: reproducible).
    reduce, region
        See :func:`slice_scores`.
    predicted, num_classes, class_names
        The predicted class map and class names (``focused`` only).

    Returns
    -------
    list of SliceSuggestion
        Highest score first; fewer than ``top_k`` when not enough slices qualify.
    """
    if strategy not in STRATEGIES:
        raise InvalidVolumeError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if top_k < 0 or min_gap < 0:
        raise InvalidVolumeError("top_k and min_gap must be >= 0")
    if strategy == "focused":
        return _suggest_focused(disagreement_or_uncertainty, labels, predicted, axis=axis, top_k=top_k,
                                min_gap=min_gap, ignore_index=ignore_index, num_classes=num_classes,
                                class_names=class_names)
    if strategy == "entropy" and probabilities is not None:
        volume = _entropy_map(probabilities)
    elif disagreement_or_uncertainty is not None:
        volume = np.asarray(disagreement_or_uncertainty)
    elif probabilities is not None:
        volume = np.asarray(probabilities)[0]
    else:
        raise InvalidVolumeError("suggest_slices needs a disagreement/uncertainty map or probabilities")
    ax = _check_axis(axis, volume.ndim)
    n = volume.shape[ax]
    if labels is not None and np.shape(labels) != volume.shape:
        raise InvalidVolumeError(
            f"label map of shape {np.shape(labels)} does not match the map {volume.shape}"
        )
    if strategy == "random":
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
        scores = gen.random(n)
    else:
        scores = slice_scores(volume, ax, reduce, region=region)
    done = annotated_slices(labels, ax, ignore_index) if labels is not None else np.zeros(n, bool)
    order = np.argsort(-scores, kind="stable")
    picked: list[SliceSuggestion] = []
    for i in order:
        if len(picked) >= top_k:
            break
        if done[i]:
            continue
        if min_gap > 1 and any(abs(int(i) - s.index) < min_gap for s in picked):
            continue
        picked.append(SliceSuggestion(int(i), float(scores[i]), ax))
    return picked


def _suggest_focused(disagreement, labels, predicted, *, axis, top_k, min_gap, ignore_index, num_classes,
                     class_names) -> list[SliceSuggestion]:
    from barl_core.active.ranking import CaseInputs, RankingConfig, rank_slices

    if disagreement is None or predicted is None:
        raise InvalidVolumeError("the 'focused' strategy needs the disagreement map and the predicted class map")
    picks = rank_slices([CaseInputs("case", np.asarray(disagreement), np.asarray(predicted), labels)],
                        top_k=top_k, config=RankingConfig(min_gap=min_gap), num_classes=num_classes,
                        class_names=class_names, axis=_check_axis(axis, np.ndim(disagreement)),
                        ignore_index=ignore_index)
    return [SliceSuggestion(p.index, p.score, p.axis, p.reason, p.uncertainty) for p in picks]


def case_score(
    disagreement: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    axis: int = 0,
    ignore_index: int = IGNORE_INDEX,
    top_k: int = 5,
) -> float:
    """How much annotating a case is expected to help: the mean of its best slice scores.

    The ``top_k`` highest :func:`slice_scores` among its *unannotated* slices are averaged,
    so a case with a few confusing slices ranks above a calm one of the same mean, and a
    case whose confusing slices are already labelled does not.
    """
    d = np.asarray(disagreement)
    ax = _check_axis(axis, d.ndim)
    scores = slice_scores(d, ax)
    if labels is not None:
        scores = scores[~annotated_slices(labels, ax, ignore_index)]
    if scores.size == 0:
        return 0.0
    k = max(1, min(top_k, scores.size))
    return float(np.sort(scores)[-k:].mean())


def suggest_cases(
    case_scores: Mapping[str, float],
    n_annotated: Mapping[str, int] | None = None,
    top_k: int = 5,
) -> list[CaseSuggestion]:
    """Rank cases by expected gain: high disagreement first, fewer annotations breaking ties.

    The gain is ``score / (1 + n_annotated) ** 0.5``: a case that already has many labelled
    slices gains less from one more (diminishing returns), at equal disagreement.

    Parameters
    ----------
    case_scores : mapping name -> float
        E.g. :func:`case_score` or the mean disagreement of each case; ``None``/NaN scores
        (not predicted yet) are left out.
    n_annotated : mapping name -> int, optional
        Slices already annotated per case.
    top_k : int
    """
    n_annotated = dict(n_annotated or {})
    rows = []
    for name, score in case_scores.items():
        if score is None or not np.isfinite(score):
            continue
        n = int(n_annotated.get(name, 0))
        gain = float(score) / float(np.sqrt(1.0 + max(n, 0)))
        rows.append(CaseSuggestion(str(name), gain, n))
    rows.sort(key=lambda c: (-c.score, c.n_annotated, c.name))
    return rows[: max(0, top_k)]
