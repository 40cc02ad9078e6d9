"""The session's review use-cases: which slices and cases next, advice, proposals.

What the user looks at after a prediction: the focused slice ranking and its per-slice
profile (the minimap), case ranking, "label more or stop?", and agreement-gated proposals
to accept or reject. Part of :class:`~barl_core.workspace.session.Session`.

The slice suggestions and the case order come from one ``focused`` ranking over every
predicted case (:class:`~barl_core.workspace.suggestions.WorkspaceRanking`): each case's
picks use the per-slice features stored with its prediction and every other case's
annotations as context, and a case's score is the mean score of its best picks.
"""

from __future__ import annotations

import numpy as np

from barl_core.active.proposals import NEEDS_HUMAN, fill_proposal, gate
from barl_core.errors import BarlError, InputFileError
from barl_core.workspace.labels import check_slice

__all__ = ["ReviewUseCases"]


class ReviewUseCases:
    """Session mixin: suggestions, advice and proposals (uses ``self.workspace``)."""

    def case_ranking(self, top_k: int = 5, min_gap: int = 2):
        """Rank every predicted case with the ``focused`` ranking: cases best first, ``top_k`` picks each.

        Returns a :class:`~barl_core.active.case_ranking.CaseRanking`; computed once per
        workspace state (:class:`~barl_core.workspace.suggestions.WorkspaceRanking`).
        """
        ranking = getattr(self, "_ranking", None)
        if ranking is None or ranking.workspace is not self.workspace:
            from barl_core.workspace.suggestions import WorkspaceRanking

            ranking = self._ranking = WorkspaceRanking(self.workspace)
        return ranking.rank(top_k=top_k, min_gap=min_gap)

    def suggest_slices(
        self, case: str, top_k: int = 5, min_gap: int = 2, strategy: str = "focused"
    ) -> list:
        """Return the unannotated slices of ``case`` to annotate next, best first (predict first).

        The default ``focused`` ranking (:mod:`barl_core.active.ranking`) is the one the
        active-learning benchmark measured best, with the features stored beside the
        prediction and the other cases' annotations (:meth:`case_ranking`); each suggestion
        carries its one-line ``reason`` and the per-slice quantity of :meth:`slice_profile`
        (``uncertainty``). The baselines (``disagreement``, ``entropy``, ``random``) rank
        the case alone.
        """
        from barl_core.active.suggest import SliceSuggestion, suggest_slices

        ws = self.workspace
        if strategy == "focused":
            picks = self.case_ranking(top_k, min_gap).slices.get(case, [])
            return [SliceSuggestion(p.index, p.score, p.axis, p.reason, p.uncertainty) for p in picks]
        dis = ws.load_disagreement(case)
        if dis is None:
            return []
        return list(
            suggest_slices(dis, ws.load_labels(case), axis=0, top_k=top_k, min_gap=min_gap,
                           strategy=strategy)
        )

    def slice_profile(self, case: str) -> tuple[np.ndarray | None, str]:
        """Return the per-slice quantity the minimap draws and the ranking scores, and its label.

        One quantity for both (:func:`barl_core.active.focus.focus_profile`: disagreement
        on and near each predicted structure), so the user sees what the suggestions rank.
        ``(None, label)`` before the case is predicted.
        """
        from barl_core.active.focus import PROFILE_LABEL, focus_profile

        ws = self.workspace
        dis, pred = ws.load_disagreement(case), ws.load_prediction(case)
        if dis is None or pred is None:
            return None, PROFILE_LABEL
        prof = focus_profile(dis, pred, ws.load_labels(case), num_classes=len(ws.class_names))
        return prof, PROFILE_LABEL

    def suggest_cases(self, top_k: int = 5) -> list:
        """Predicted cases ranked by the ``focused`` ranking (:meth:`case_ranking`), best first.

        Each :class:`~barl_core.active.ranking.RankedCase` carries its score (the mean
        score of its best picks), its best slice and that slice's one-line reason; empty
        while fewer than two cases are predicted (nothing to choose between).
        """
        cases = self.case_ranking().cases
        return list(cases[:top_k]) if len(cases) >= 2 else []

    def advise(self, case: str | None = None):
        """Label more or stop? (:func:`barl_core.workspace.advice.advise` on this workspace)."""
        from barl_core.workspace.advice import advise

        ws = self.workspace
        v = ws.current_version()
        annotated = {c: set(ws.annotated_slices(c)) for c in ws.cases}
        unused = 0
        if v is not None:
            seen = {c: set(z) for c, z in v.data_snapshot.items()}
            unused = sum(len(z - seen.get(c, set())) for c, z in annotated.items())
        suggestions = [(case, int(s.index)) for s in self.suggest_slices(case)] if case else []
        curve = [(n, d) for _vid, n, d in ws.versions.learning_curve()]
        return advise(
            curve,
            n_annotated=sum(len(z) for z in annotated.values()),
            unused_slices=unused,
            has_model=ws.current_model_path() is not None,
            disagreement_trend=ws.versions.disagreement_trend(),
            correction_dice=ws.provenance.correction_dice(ws.cases),
            suggestions=suggestions,
        )

    # ------------------------------------------------------------------ proposals
    def proposal_skip(self, case: str) -> set[int]:
        """Slices that get no proposal: annotated ones and those whose proposal was rejected."""
        ws = self.workspace
        return set(ws.annotated_slices(case)) | ws.provenance.rejected(case)

    def proposal(self, case: str, threshold: float) -> np.ndarray | None:
        """Return the case's proposal volume (:data:`NEEDS_HUMAN` where a human must decide).

        None when the case has no prediction with agreement confidence yet.
        """
        ws = self.workspace
        pred, conf = ws.load_prediction(case), ws.load_confidence(case)
        if pred is None or conf is None:
            return None
        return gate(pred, conf, threshold, skip_slices=self.proposal_skip(case))

    def proposal_values(
        self, case: str, z: int, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels that accepting slice ``z``'s proposal writes, and the proposal itself.

        ``threshold`` None accepts the whole prediction of the slice (the proposal is then
        the prediction); a number gates it by agreement confidence and fills the
        "needs a human" voxels with the prediction's best guess
        (:func:`~barl_core.active.proposals.fill_proposal`).

        Raises
        ------
        InputFileError
            No prediction (or no confidence, with a threshold) for this case.
        BarlError
            Slice ``z`` is already annotated.
        """
        ws = self.workspace
        pred = ws.load_prediction(case)
        if pred is None:
            raise InputFileError(f"no prediction for case {case!r} yet: predict it first")
        z = check_slice(z, pred.shape[0])
        if z in ws.annotated_slices(case):
            raise BarlError(f"slice {z} is already annotated: edit it, or un-mark it first")
        if threshold is None:
            values = fill_proposal(pred[z], pred[z], ws.num_classes)
            return values, values
        conf = ws.load_confidence(case)
        if conf is None:
            raise InputFileError(f"no proposal for case {case!r}: predict it again")
        proposal = gate(pred[z][None], conf[z][None], threshold)[0]
        return fill_proposal(proposal, pred[z], ws.num_classes), proposal

    def record_accepted(self, case: str, z: int) -> None:
        """Tag slice ``z`` (already saved) as taken from the model's proposal."""
        self.workspace.tag_accepted(case, z)

    def accept_proposal(self, case: str, z: int, threshold: float | None = None) -> list[int]:
        """Accept the proposal on slice ``z``: it becomes annotated, recorded as ``accepted``."""
        values, proposal = self.proposal_values(case, z, threshold)
        ws = self.workspace
        labels = ws.load_labels(case)
        labels[int(z)] = values
        slices = ws.save_labels(case, labels, how={int(z): "accepted"},
                                proposals={int(z): proposal},
                                model_version=self.current_version_id())
        self.record_accepted(case, z)
        return slices

    def reject_proposal(self, case: str, z: int) -> None:
        """Turn down the proposal on slice ``z``: it is not offered again for this case."""
        if self.workspace.load_prediction(case) is None:
            raise InputFileError(f"no proposal for case {case!r}: predict it first")
        self.workspace.reject_proposal(case, z, self.current_version_id())

    def calibrated_threshold(self, target_precision: float = 0.95):
        """Return the agreement threshold fitted on the frozen validation slices (or None).

        See :func:`barl_core.active.calibration.calibrate_threshold`: the lowest threshold
        at which, on validation slices the human drew and the model never trained on, every
        class's proposed voxels are right at least ``target_precision`` of the time.
        """
        from barl_core.active.calibration import calibrate_threshold

        ws = self.workspace
        annotated = {c: ws.annotated_slices(c) for c in ws.cases}
        pairs = []
        for case, zs in sorted(ws.validation.validation_slices(annotated).items()):
            pred, conf = ws.load_prediction(case), ws.load_confidence(case)
            if pred is None or conf is None:
                continue
            labels = ws.load_labels(case)
            pairs += [(pred[z], conf[z], labels[z]) for z in zs]
        return calibrate_threshold(pairs, target_precision=target_precision)

    def proposal_coverage(self, proposal: np.ndarray, z: int) -> float:
        """Share of slice ``z`` that ``proposal`` decides (not :data:`NEEDS_HUMAN`)."""
        return float(np.mean(proposal[int(z)] != NEEDS_HUMAN))
