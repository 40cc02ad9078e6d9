"""What the annotated sizes of each class tell the ``focused`` ranking.

Why a module: branch disagreement (:mod:`barl_core.active.focus`) only sees the mistakes the two
branches argue about. The annotations also say how large each class can be on a slice, and how
much of each class the model has been shown; three factors of
:func:`barl_core.active.ranking.rank_slices` read that (all off in the default ``focused``
ranking, on in the ``focused2`` preset):

- **over-reach**: a slice where a class is predicted on more than ``margin`` times its largest
  annotated cross-section holds a confident error (on hippocampus, a round-0 model trained on
  one slice through the middle of each structure painted one class over whole slices beyond
  both ends, both branches agreeing: 141,000 false-positive voxels against 14,000 true ones on
  the benchmark's 8 annotated cases). It scores the fraction of the prediction that cannot be
  right, ``1 - margin * largest / predicted``; one pick per contiguous run of such slices
  (:func:`clear_run`);
- **area against the annotated size**: the area factor divides a slice's cross-section by the
  class's largest *annotated* one, not its largest predicted one, which such a false positive
  inflates until the real structure looks like a thin tip;
- **balance by voxels**: a class annotated only by its tips counts as rarely seen
  (:func:`class_counts` with ``by="voxels"``).

Example
-------
>>> import numpy as np
>>> area, over = size_factors_from(np.array([[36.0], [576.0]]), np.array([[36.0], [576.0]]),
...                                np.array([36.0]), np.ones((2, 1)), overreach_margin=2.0)
>>> over.round(3).tolist()
[[0.0], [0.875]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from barl_core.active.context import PreparedCase, RankingContext, largest_areas
from barl_core.data.cross_sections import OVERREACH_MARGIN

__all__ = ["class_counts", "class_areas", "size_factors", "size_factors_from", "clear_run", "expected_gain"]


def class_counts(cases: Sequence[PreparedCase], n_fg: int, context: RankingContext | None,
                 by: str = "slices") -> np.ndarray:
    """Return annotated slices (or voxels) holding each foreground class, over all cases and the context."""
    field_name = "class_voxels" if by == "voxels" else "class_counts"
    counts = np.zeros(n_fg)
    for c in cases:
        own = getattr(c, field_name)
        if own is not None:
            own = np.asarray(own, np.float64)[:n_fg]
            counts[: own.size] += own
    extra = None if context is None else getattr(context, field_name)
    if extra is not None:
        extra = np.asarray(extra, np.float64)[:n_fg]
        counts[: extra.size] += extra
    return counts


def class_areas(cases: Sequence[PreparedCase], n_fg: int, context: RankingContext | None) -> np.ndarray:
    """Return the largest annotated cross-section of each foreground class, over all cases and the context.

    0 where nobody annotated the class: no reference size, and neither size factor applies.
    """
    return largest_areas([c.class_areas for c in cases] + [None if context is None else context.class_areas], n_fg)


def size_factors_from(structure_area: np.ndarray | None, predicted_area: np.ndarray | None, refs: np.ndarray,
                      area_factor: np.ndarray, *, annotated_reference: bool = False, area_floor: float = 0.1,
                      overreach_margin: float = OVERREACH_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(area factor, over-reach)``, both ``[Z, C-1]``, from per-slice areas and reference sizes.

    ``area_factor`` (the one against the largest predicted cross-section) is kept for classes
    without a reference, and everywhere unless ``annotated_reference``. Over-reach is 0 where
    the prediction fits ``overreach_margin`` times the reference.
    """
    n_fg = area_factor.shape[1]
    out = area_factor
    overreach = np.zeros_like(area_factor, dtype=np.float64)
    known = np.flatnonzero(np.asarray(refs, np.float64)[:n_fg] > 0)
    if annotated_reference and structure_area is not None and known.size:
        floor = min(max(area_floor, 0.0), 1.0)
        out = area_factor.copy()
        for k in known:
            rel = np.minimum(structure_area[:, k] / refs[k], 1.0)
            out[:, k] = np.sqrt(np.clip(rel, floor, 1.0))
    if predicted_area is not None:
        for k in known:
            allowed = overreach_margin * refs[k]
            pa = predicted_area[:, k]
            overreach[:, k] = np.where(pa > allowed, 1.0 - allowed / np.maximum(pa, 1.0), 0.0)
    return out, overreach


def size_factors(p: PreparedCase, refs: np.ndarray | None, *, area_reference: str = "predicted",
                 area_floor: float = 0.1, overreach_weight: float = 0.0,
                 overreach_margin: float = OVERREACH_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Return a prepared case's ``(area factor, over-reach)`` under a ranking's settings (see :func:`size_factors_from`)."""
    if refs is None:
        return p.area_factor, np.zeros_like(p.per_class)
    area, over = size_factors_from(p.structure_area, p.predicted_area if overreach_weight > 0 else None, refs,
                                   p.area_factor, annotated_reference=area_reference == "annotated",
                                   area_floor=area_floor, overreach_margin=overreach_margin)
    return area, over


def clear_run(column: np.ndarray, z: int) -> None:
    """Zero the contiguous run of positive values of ``column`` that holds index ``z``, in place.

    A label of one slice of an over-reaching run shows the error of the whole run: its
    neighbours are not asked about again for the same reason.
    """
    lo, hi = z, z
    while lo > 0 and column[lo - 1] > 0:
        lo -= 1
    while hi + 1 < column.size and column[hi + 1] > 0:
        hi += 1
    column[lo : hi + 1] = 0.0


def expected_gain(per_class: np.ndarray, structure_area: np.ndarray | None, refs: np.ndarray,
                  by: str) -> np.ndarray:
    """Return what a disagreement-driven pick of one slice is expected to add to the class counts.

    ``per_class`` and ``structure_area`` are that slice's rows. By slices: 1 for each class
    whose band covers it. By voxels: each such class's predicted cross-section there, capped at
    its largest annotated one (a confident over-prediction does not mean the label will hold
    that much of the class).
    """
    covered = per_class > 0
    if by != "voxels" or structure_area is None:
        return covered.astype(np.float64)
    area = structure_area.astype(np.float64)
    cap = np.where(refs[: area.size] > 0, refs[: area.size], area)
    return np.where(covered, np.minimum(area, cap), 0.0)
