"""What cases bring to a ranking call, summarised small: prepared cases and other cases' annotations.

Why a module: the ``focused`` ranking (:func:`barl_core.active.ranking.rank_slices`) weighs a
slice by class balance (how many annotated slices hold each class) and by feature-space
coverage (how unlike it is to the annotated slices). Over a whole workspace both depend on
every case, but the app cannot hold every case's disagreement map at once. A
:class:`RankingContext` carries the part of the other cases that these two factors read
(class counts and the embeddings of their annotated slices), built from their labels and
per-slice features alone (:func:`annotated_context`), so one case can be ranked at a time.

Example
-------
>>> lab = np.full((6, 4, 4), 255, np.uint8); lab[2] = 0; lab[2, 1, 1] = 1
>>> ctx = annotated_context(lab, np.arange(12.0).reshape(6, 2), num_classes=3)
>>> ctx.features.tolist(), ctx.class_counts.tolist()
([[4.0, 5.0]], [1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from barl_core.active.focus import FocusConfig, class_slice_uncertainty
from barl_core.data.cross_sections import class_slice_areas
from barl_core.data.labels import IGNORE_INDEX, annotated_mask
from barl_core.errors import InvalidVolumeError

__all__ = ["RankingContext", "PreparedCase", "annotated_context", "class_slice_counts", "class_label_sizes",
           "largest_areas", "prepare_case"]


@dataclass(frozen=True)
class RankingContext:
    """What cases outside a ranking call contribute (see :func:`annotated_context`).

    Attributes
    ----------
    features : numpy.ndarray or None
        ``[n, F]`` embeddings of slices annotated elsewhere: they count as taken in the
        feature-space coverage factor. Only meaningful from the same model as the ranked
        cases' features.
    class_counts : numpy.ndarray or None
        ``[C-1]`` annotated slices elsewhere that hold each foreground class (class balance).
    class_voxels : numpy.ndarray or None
        ``[C-1]`` annotated voxels of each foreground class elsewhere (class balance by voxels).
    class_areas : numpy.ndarray or None
        ``[C-1]`` the largest annotated cross-section of each class elsewhere (voxels on one
        slice): how large a class can plausibly be on a slice (see :func:`class_label_sizes`).
    """

    features: np.ndarray | None = None
    class_counts: np.ndarray | None = None
    class_voxels: np.ndarray | None = None
    class_areas: np.ndarray | None = None

    @staticmethod
    def combine(contexts: Sequence[RankingContext]) -> RankingContext:
        """Return one context holding all of ``contexts``' annotated slices and class counts."""
        feats = [c.features for c in contexts if c.features is not None and len(c.features)]
        counts = [np.asarray(c.class_counts, np.float64) for c in contexts if c.class_counts is not None]
        voxels = [np.asarray(c.class_voxels, np.float64) for c in contexts if c.class_voxels is not None]
        areas = [np.asarray(c.class_areas, np.float64) for c in contexts if c.class_areas is not None]
        return RankingContext(
            np.concatenate(feats) if feats else None,
            np.sum(counts, axis=0) if counts else None,
            np.sum(voxels, axis=0) if voxels else None,
            np.max(areas, axis=0) if areas else None,
        )


def largest_areas(sources, n_fg: int) -> np.ndarray:
    """Return ``[n_fg]``: the element-wise maximum of per-class sizes from several sources.

    Each source is ``None`` (nothing known) or a per-class array, possibly shorter than
    ``n_fg``; 0 where no source knows the class.
    """
    out = np.zeros(n_fg)
    for a in sources:
        if a is not None:
            a = np.asarray(a, np.float64)[:n_fg]
            out[: a.size] = np.maximum(out[: a.size], a)
    return out


def _label_stats(labels: np.ndarray | None, n_fg: int, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(slices holding, voxels, largest cross-section)`` of each foreground class, from one pass."""
    if labels is None:
        return np.zeros(n_fg), np.zeros(n_fg), np.zeros(n_fg)
    per_slice = class_slice_areas(labels, n_fg, axis)
    largest = per_slice.max(axis=0) if per_slice.shape[0] else np.zeros(n_fg)
    return (per_slice > 0).sum(axis=0).astype(np.float64), per_slice.sum(axis=0), largest


def class_slice_counts(labels: np.ndarray | None, n_fg: int, axis: int) -> np.ndarray:
    """Return, per foreground class ``1..n_fg``, the slices of one label map that hold it."""
    return _label_stats(labels, n_fg, axis)[0]


def class_label_sizes(labels: np.ndarray | None, n_fg: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per foreground class ``1..n_fg``: annotated voxels, and the largest annotated cross-section.

    The largest cross-section (voxels of the class on one annotated slice) is what the
    ``focused`` ranking takes as the size a class can plausibly have on a slice: a prediction
    several times larger is a confident error, whatever the branches' disagreement says.
    """
    return _label_stats(labels, n_fg, axis)[1:]


def annotated_context(
    labels: np.ndarray | None,
    features: np.ndarray | None,
    num_classes: int,
    *,
    axis: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> RankingContext:
    """Return what one case's annotations bring to the ranking of other cases.

    Needs only the case's labels and per-slice features (no disagreement or prediction), so
    the context of a whole workspace is cheap to gather.

    Parameters
    ----------
    labels : numpy.ndarray or None
        The case's sparse labels (``ignore_index`` = not annotated).
    features : numpy.ndarray or None
        ``[n_slices, F]`` per-slice embeddings of the case's prediction.
    num_classes : int
        Including background.
    """
    n = np.shape(labels)[axis] if labels is not None else (len(features) if features is not None else 0)
    done = annotated_mask(labels, axis, ignore_index) if labels is not None else np.zeros(n, bool)
    feats = None
    if features is not None:
        feats = np.asarray(features, np.float64)
        if feats.shape[0] != n:
            raise InvalidVolumeError(f"features for {feats.shape[0]} slices, labels have {n}")
        feats = feats[done]
    return RankingContext(feats, *_label_stats(labels, max(num_classes - 1, 0), axis))


@dataclass(frozen=True)
class PreparedCase:
    """One case reduced to what the greedy ranking reads (per-slice arrays; cache it).

    Made by :func:`prepare_case`; :func:`barl_core.active.ranking.rank_slices` takes it in
    place of a :class:`~barl_core.active.ranking.CaseInputs`. Valid for the ``focus`` and
    ``area_floor`` it was prepared with, and for as long as the case's files are unchanged.

    Attributes
    ----------
    name : str
    per_class : numpy.ndarray
        ``[Z, C-1]`` disagreement in each class's band per slice (the minimap's parts).
    area_factor : numpy.ndarray
        ``[Z, C-1]`` the cross-section factor.
    fallback : numpy.ndarray
        ``[Z]`` whole-slice mean disagreement (ties when nothing is predicted).
    annotated : numpy.ndarray
        ``[Z]`` bool, annotated slices.
    extents : tuple
        Per class, the first and last slice of its band, or None.
    features : numpy.ndarray or None
        ``[Z, F]`` per-slice embeddings.
    class_counts : numpy.ndarray
        ``[C-1]`` annotated slices holding each foreground class.
    structure_area, predicted_area : numpy.ndarray or None
        ``[Z, C-1]`` voxels per slice of each class's kept structure (what the area factor
        reads) and of the raw prediction (what the over-reach factor reads).
    class_voxels, class_areas : numpy.ndarray or None
        ``[C-1]`` annotated voxels, and largest annotated cross-section, of each class
        (:func:`class_label_sizes`).
    """

    name: str
    per_class: np.ndarray
    area_factor: np.ndarray
    fallback: np.ndarray
    annotated: np.ndarray
    extents: tuple
    features: np.ndarray | None
    class_counts: np.ndarray
    structure_area: np.ndarray | None = None
    predicted_area: np.ndarray | None = None
    class_voxels: np.ndarray | None = None
    class_areas: np.ndarray | None = None


def prepare_case(
    case,
    *,
    num_classes: int,
    focus: FocusConfig | None = None,
    area_floor: float = 0.1,
    axis: int = 0,
    ignore_index: int = IGNORE_INDEX,
    reference_areas: np.ndarray | None = None,
) -> PreparedCase:
    """Reduce a :class:`~barl_core.active.ranking.CaseInputs` to its :class:`PreparedCase`.

    Parameters
    ----------
    case : CaseInputs
    num_classes : int
        Including background.
    focus, area_floor
        As in :class:`~barl_core.active.ranking.RankingConfig`.
    reference_areas : numpy.ndarray, optional
        ``[C-1]`` largest annotated cross-section of each class in *other* cases (e.g.
        ``RankingContext.class_areas``); with ``focus.trim_overreach`` the case's own and these
        say which predicted slices cannot be right. The prepared case is then valid only for
        as long as those annotations are unchanged too.
    """
    dis = np.asarray(case.disagreement)
    n_fg = max(num_classes - 1, 0)
    counts, voxels, areas = _label_stats(case.labels, n_fg, axis)
    refs = largest_areas([areas, reference_areas], n_fg)
    per_class, area = class_slice_uncertainty(dis, case.predicted, case.labels, num_classes=num_classes,
                                              axis=axis, config=focus or FocusConfig(),
                                              ignore_index=ignore_index, return_area=True, reference_areas=refs)
    rel = area / np.maximum(area.max(axis=0, keepdims=True), 1.0)
    area_factor = np.sqrt(np.clip(rel, min(max(area_floor, 0.0), 1.0), 1.0))
    other = tuple(a for a in range(3) if a != axis)
    fallback = dis.astype(np.float32).mean(axis=other).astype(np.float64)
    extents = []
    for k in range(per_class.shape[1]):
        zs = np.flatnonzero(per_class[:, k] > 0)
        extents.append((int(zs[0]), int(zs[-1])) if zs.size else None)
    feats = None if case.features is None else np.asarray(case.features, dtype=np.float64)
    if feats is not None and feats.shape[0] != dis.shape[axis]:
        raise InvalidVolumeError(f"{case.name}: features for {feats.shape[0]} slices, volume has {dis.shape[axis]}")
    done = (annotated_mask(case.labels, axis, ignore_index) if case.labels is not None
            else np.zeros(dis.shape[axis], bool))
    predicted_area = class_slice_areas(case.predicted, n_fg, axis)
    return PreparedCase(case.name, per_class, area_factor, fallback, done, tuple(extents), feats,
                        counts, area, predicted_area, voxels, areas)
