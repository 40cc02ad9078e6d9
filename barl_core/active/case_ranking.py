"""Rank the cases of a collection, and each case's slices, with the ``focused`` ranking, one case at a time.

Why one at a time: the app's workspace (and ``barl suggest``'s folder) can hold more volumes
than fit in memory together, and the benchmark's joint :func:`~barl_core.active.ranking.rank_slices`
call over all cases needs every disagreement map at once. Here each case is loaded, ranked
alone and dropped; what the joint call would have taken from the *other* cases comes in as a
:class:`~barl_core.active.context.RankingContext`, which needs only their labels and per-slice
features (small):

- class balance counts the annotated slices of every case;
- the feature-space coverage factor measures each slice against the annotated slices of every
  case whose features come from the same model (``CaseSource.space``; features of another
  model live in another space and are left out);
- coverage along z and the ``min_gap`` rule are per case, as in the joint call.

What differs from the joint call: the feature factor's distance scale is the median over the
case's own free slices, and the ``case_decay`` of further picks from one case does not apply
across cases (each list is one case's).

**A case's score** is the mean score of its first ``per_case`` picks (3 by default): a case
with several slices worth asking about ranks above a case with one, and a case whose doubtful
slices are already annotated ranks low. Its reason is its best pick's reason.

Example
-------
>>> dis = np.zeros((20, 8, 8), np.float32); pred = np.zeros((20, 8, 8), np.uint8)
>>> pred[5:15, 2:6, 2:6] = 1; dis[5:15, 2, 2:6] = 0.5
>>> lab = np.full(pred.shape, 255, np.uint8); lab[10] = pred[10]
>>> calm = CaseInputs("calm", np.zeros_like(dis), pred, lab)
>>> busy = CaseInputs("busy", dis, pred, lab)
>>> [c.name for c in rank_cases_in_memory([calm, busy], num_classes=2).cases]
['busy', 'calm']
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from barl_core.active.context import PreparedCase, RankingContext, annotated_context, prepare_case
from barl_core.active.ranking import (
    CaseInputs,
    RankedCase,
    RankedSlice,
    RankingConfig,
    check_ranking_args,
    rank_slices,
)
from barl_core.data.labels import IGNORE_INDEX

__all__ = ["CaseSource", "CaseRanking", "rank_case_by_case", "rank_cases_in_memory", "PER_CASE"]

#: Picks averaged into a case's score.
PER_CASE = 3


@dataclass(frozen=True)
class CaseSource:
    """One case as the others see it: its annotations' context and its features' model.

    Attributes
    ----------
    name : str
    context : RankingContext
        :func:`~barl_core.active.context.annotated_context` of the case.
    space : hashable
        Which model's feature space ``context.features`` are in (e.g. the model that predicted
        the case); features are only compared within one space.
    """

    name: str
    context: RankingContext
    space: Hashable = None


@dataclass
class CaseRanking:
    """Cases best first, and each ranked case's slice picks best first."""

    cases: list[RankedCase] = field(default_factory=list)
    slices: dict[str, list[RankedSlice]] = field(default_factory=dict)


def _context_for(source: CaseSource, sources: Sequence[CaseSource]) -> RankingContext:
    """Every other case's annotations; their features only when in ``source``'s space."""
    parts = [o.context if o.space == source.space else replace(o.context, features=None)
             for o in sources if o.name != source.name]
    return RankingContext.combine(parts)


def rank_case_by_case(
    sources: Sequence[CaseSource],
    load: Callable[[str], CaseInputs | PreparedCase | None],
    *,
    top_k: int = 5,
    per_case: int = PER_CASE,
    config: RankingConfig | None = None,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    axis: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> CaseRanking:
    """Rank every case of ``sources`` and its slices (see the module docstring).

    Parameters
    ----------
    sources : sequence of CaseSource
        Every case whose annotations count (also those ``load`` cannot rank: not predicted).
    load : callable
        ``load(name)`` returns the case's :class:`CaseInputs` (features included when there
        are some) or its :class:`~barl_core.active.context.PreparedCase` (e.g. kept from an
        earlier call), or None to leave it out of the ranking; called once per case, and
        the volumes are dropped before the next.
    top_k : int
        Picks kept per case in ``CaseRanking.slices``.
    per_case : int
        Picks averaged into the case's score.
    config, num_classes, class_names, axis, ignore_index
        As for :func:`~barl_core.active.ranking.rank_slices` (``num_classes`` with background).

    Returns
    -------
    CaseRanking
        Cases sorted by score (ties: fewer annotated slices, then name).
    """
    # refused before any volume is read (rank_slices below sees max(top_k, per_case) only)
    check_ranking_args(top_k, (config or RankingConfig()).min_gap, axis)
    out = CaseRanking()
    for src in sources:
        inputs = load(src.name)
        if inputs is None:
            continue
        cfg = config or RankingConfig()
        if not isinstance(inputs, PreparedCase):  # the expensive step, once per case
            inputs = prepare_case(inputs, num_classes=num_classes, focus=cfg.focus, area_floor=cfg.area_floor,
                                  axis=axis, ignore_index=ignore_index)
        picks = rank_slices([inputs], top_k=max(top_k, per_case), config=cfg, num_classes=num_classes,
                            class_names=class_names, axis=axis, ignore_index=ignore_index,
                            context=_context_for(src, sources))
        n_done = int(inputs.annotated.sum())
        head = picks[:per_case]
        score = float(np.mean([p.score for p in head])) if head else 0.0
        out.cases.append(RankedCase(src.name, score, n_done, head[0].index if head else None,
                                    head[0].reason if head else "every slice annotated"))
        out.slices[src.name] = picks[:top_k]
    out.cases.sort(key=lambda r: (-r.score, r.n_annotated, r.name))
    return out


def rank_cases_in_memory(
    cases: Sequence[CaseInputs],
    *,
    num_classes: int,
    axis: int = 0,
    ignore_index: int = IGNORE_INDEX,
    **kwargs,
) -> CaseRanking:
    """:func:`rank_case_by_case` over inputs already in memory (all in one feature space)."""
    by_name = {c.name: c for c in cases}
    sources = [CaseSource(c.name, annotated_context(c.labels, c.features, num_classes, axis=axis,
                                                    ignore_index=ignore_index)) for c in cases]
    return rank_case_by_case(sources, by_name.get, num_classes=num_classes, axis=axis,
                             ignore_index=ignore_index, **kwargs)
