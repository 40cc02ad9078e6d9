"""The ``focused`` ranking over a workspace: each case's slices to annotate next, and the case order.

Why a module: the app asks for suggestions whenever the open case or the predictions change,
and the ranking needs every predicted case's disagreement map, class map, labels and per-slice
features. :class:`WorkspaceRanking` gathers them the way
:func:`~barl_core.active.case_ranking.rank_case_by_case` wants (every case's annotations as
cheap context, then one predicted case at a time) and keeps the last results until a file
they were computed from changes (labels, prediction, disagreement, features, or the model a
case was predicted with), so switching cases does not rank everything again. Each case's
:class:`~barl_core.active.context.PreparedCase` (its per-slice summary, the one step that
reads the volumes) is kept until that case's own files change: after a new annotation only
that case is loaded again, and the others are re-ranked against the new context from their
summaries (milliseconds).

A case's features are compared only with features of cases predicted by the same model
(``CaseSource.space``); a case predicted before features were stored (an older workspace)
ranks without the feature-space factor.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from barl_core.active.case_ranking import CaseRanking, CaseSource, rank_case_by_case
from barl_core.active.context import PreparedCase, annotated_context, prepare_case
from barl_core.active.ranking import CaseInputs, RankingConfig

__all__ = ["WorkspaceRanking"]

#: Rankings kept (different ``top_k``/``min_gap`` or workspace states).
_KEEP = 4


def _stat(path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class WorkspaceRanking:
    """The ``focused`` ranking of one workspace's cases, cached per workspace state.

    Parameters
    ----------
    workspace : Workspace
    """

    def __init__(self, workspace: Any):
        self.workspace = workspace
        self._sources: dict[str, tuple[tuple, CaseSource]] = {}
        self._prepared: dict[str, tuple[tuple, PreparedCase | None]] = {}
        self._results: OrderedDict[tuple, CaseRanking] = OrderedDict()

    def _stamp(self, name: str) -> tuple:
        """Return what a case's part of the ranking is computed from (changes when a file does)."""
        ws = self.workspace
        rec = ws.record(name)
        files = (ws.label_path(name), ws.prediction_path(name), ws.disagreement_path(name),
                 ws.features_path(name))
        return (name, rec.predicted, rec.prediction_model, tuple(ws.annotated_slices(name)),
                *(_stat(p) for p in files))

    def source(self, name: str) -> CaseSource:
        """Return the case as the other cases see it: its annotations and its features' model."""
        ws, stamp = self.workspace, self._stamp(name)
        hit = self._sources.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        feats = ws.load_features(name)
        ctx = annotated_context(ws.load_labels(name), feats, ws.num_classes)
        src = CaseSource(name, ctx, ws.record(name).prediction_model if feats is not None else None)
        self._sources[name] = (stamp, src)
        return src

    def inputs(self, name: str) -> CaseInputs | None:
        """Return everything the ranking reads of one case, or None before it is predicted."""
        ws = self.workspace
        dis, pred = ws.load_disagreement(name), ws.load_prediction(name)
        if dis is None or pred is None:
            return None
        return CaseInputs(name, dis, pred, ws.load_labels(name), features=ws.load_features(name))

    def prepared(self, name: str) -> PreparedCase | None:
        """Return the case's per-slice summary for the ranking (kept until its files change)."""
        stamp = (self._stamp(name), self.workspace.num_classes)
        hit = self._prepared.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        inputs = self.inputs(name)
        cfg = RankingConfig()
        prep = None if inputs is None else prepare_case(
            inputs, num_classes=self.workspace.num_classes, focus=cfg.focus, area_floor=cfg.area_floor)
        self._prepared[name] = (stamp, prep)
        return prep

    def rank(self, top_k: int = 5, min_gap: int = 2) -> CaseRanking:
        """Rank every predicted case, with its ``top_k`` slice picks (see the module docstring)."""
        ws = self.workspace
        names = list(ws.cases)
        key = (tuple(self._stamp(n) for n in names), tuple(ws.class_names), int(top_k), int(min_gap))
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        for cache in (self._sources, self._prepared):
            for gone in set(cache) - set(names):
                del cache[gone]
        result = rank_case_by_case(
            [self.source(n) for n in names], self.prepared, top_k=top_k,
            config=RankingConfig(min_gap=min_gap), num_classes=ws.num_classes,
            class_names=tuple(ws.class_names),
        )
        self._results[key] = result
        while len(self._results) > _KEEP:
            self._results.popitem(last=False)
        return result
