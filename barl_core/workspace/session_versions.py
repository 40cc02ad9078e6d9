"""The session's model versions: the working model, roll back, score, compare.

Part of :class:`~barl_core.workspace.session.Session`; the registry itself is
:mod:`barl_core.workspace.versions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from barl_core.errors import InputFileError
from barl_core.workspace.labels import check_slice

__all__ = ["VersionUseCases"]


class VersionUseCases:
    """Session mixin: versions of the working model (uses ``self.workspace``)."""

    @property
    def versions(self) -> list:
        """Every model version, oldest first (:class:`~barl_core.workspace.versions.ModelVersion`)."""
        return list(self.workspace.versions.versions)

    def current_version(self):
        """Return the working model's version, or None before the first training."""
        return self.workspace.current_version()

    def current_version_id(self) -> str | None:
        """Return the working model's version id (``v1``...), or None."""
        v = self.current_version()
        return v.id if v else None

    def rollback(self, version: str) -> Path:
        """Make ``version`` the working model again; return its checkpoint (nothing is deleted)."""
        return self.workspace.rollback(version)

    def evaluation_cases(self) -> list[str]:
        """Cases holding frozen validation slices (predicting them scores a version)."""
        ws = self.workspace
        return sorted(
            ws.validation.validation_slices({c: ws.annotated_slices(c) for c in ws.cases})
        )

    def evaluate_version(self, vid: str) -> dict | None:
        """Score version ``vid`` on the frozen validation slices from its stored predictions."""
        from barl_core.workspace.validation import evaluate

        ws = self.workspace
        v = ws.versions.get(vid)
        preds, labels = {}, {}
        for case in v.validation_slices:
            p = ws.load_version_prediction(vid, case)
            if p is not None:
                preds[case], labels[case] = p, ws.load_labels(case)
        metrics = evaluate(preds, labels, v.validation_slices, ws.class_names)
        ws.versions.set_metrics(vid, metrics)
        return metrics

    def compare(self, a: str, b: str, case: str, z: int) -> tuple[dict, np.ndarray, np.ndarray]:
        """Dice between versions ``a`` and ``b`` on slice ``z``; also their two predictions."""
        from barl_core.workspace.versions import compare_slices

        ws = self.workspace
        pa, pb = ws.load_version_prediction(a, case), ws.load_version_prediction(b, case)
        for vid, p in ((a, pa), (b, pb)):
            if p is None:
                raise InputFileError(
                    f"version {vid} has not predicted {case!r}: roll back to it and predict"
                )
        z = check_slice(z, pa.shape[0])
        return compare_slices(pa[z], pb[z], ws.num_classes), pa, pb
