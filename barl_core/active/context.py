"""What the cases outside a ranking call bring to it: their annotations, summarised small.

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

from barl_core.data.labels import IGNORE_INDEX, annotated_mask
from barl_core.errors import InvalidVolumeError

__all__ = ["RankingContext", "annotated_context", "class_slice_counts"]


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
    """

    features: np.ndarray | None = None
    class_counts: np.ndarray | None = None

    @staticmethod
    def combine(contexts: Sequence[RankingContext]) -> RankingContext:
        """Return one context holding all of ``contexts``' annotated slices and class counts."""
        feats = [c.features for c in contexts if c.features is not None and len(c.features)]
        counts = [np.asarray(c.class_counts, np.float64) for c in contexts if c.class_counts is not None]
        return RankingContext(
            np.concatenate(feats) if feats else None,
            np.sum(counts, axis=0) if counts else None,
        )


def class_slice_counts(labels: np.ndarray | None, n_fg: int, axis: int) -> np.ndarray:
    """Return, per foreground class ``1..n_fg``, the slices of one label map that hold it."""
    counts = np.zeros(n_fg, dtype=np.float64)
    if labels is None:
        return counts
    lab = np.asarray(labels)
    other = tuple(a for a in range(3) if a != axis)
    for k in range(n_fg):
        counts[k] = int((lab == k + 1).any(axis=other).sum())
    return counts


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
    return RankingContext(feats, class_slice_counts(labels, max(num_classes - 1, 0), axis))
