"""The predictions of a workspace's cases: class map, disagreement, confidence, features.

The per-slice features are the ``focused`` ranking's feature space (absent in older
workspaces: the ranking then runs without its feature-space factor). Part of :class:`~barl_core.workspace.layout.Workspace` (see :mod:`barl_core.workspace.labels`).
File names follow :func:`barl_core.inference.outputs.output_paths`, the rule the writer uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from barl_core.active.suggest import case_score
from barl_core.data.case_names import validate_case_name
from barl_core.errors import GeometryMismatchError
from barl_core.inference.outputs import LABELS_EXTENSION as _EXT
from barl_core.inference.outputs import features_path, output_paths
from barl_core.io.volume import read_volume, write_labels, write_volume

__all__ = ["PredictionStore"]


class PredictionStore:
    """Predictions of the cases (used as a part of :class:`~barl_core.workspace.layout.Workspace`)."""

    def prediction_path(self, name: str) -> Path:
        """Where case ``name``'s latest class map is stored."""
        return self.predictions_dir / f"{validate_case_name(name)}{_EXT}"

    def disagreement_path(self, name: str) -> Path:
        """Where case ``name``'s latest disagreement map is stored."""
        return output_paths(self.predictions_dir, validate_case_name(name))[1]

    def confidence_path(self, name: str) -> Path:
        """Where case ``name``'s latest agreement confidence is stored."""
        return output_paths(self.predictions_dir, validate_case_name(name))[2]

    def features_path(self, name: str) -> Path:
        """Where the per-slice features of case ``name``'s latest prediction are stored."""
        return features_path(self.predictions_dir, validate_case_name(name))

    def version_prediction_path(self, version: str, name: str) -> Path:
        """Where the prediction of model version ``version`` on case ``name`` is kept."""
        return self.predictions_dir / "versions" / validate_case_name(version) / f"{name}{_EXT}"

    def set_prediction(
        self,
        name: str,
        labels: np.ndarray,
        disagreement: np.ndarray | None = None,
        *,
        model: str | None = None,
        confidence: np.ndarray | None = None,
        version: str | None = None,
        features: np.ndarray | None = None,
    ) -> float | None:
        """Store a prediction (and its disagreement map); return the case's disagreement score.

        The score is :func:`barl_core.active.suggest.case_score` (the mean of the most
        uncertain unannotated slices), kept per model version to follow the disagreement's
        trend. ``features`` (``[n_slices, F]``, from the same prediction) are stored beside
        it for the ``focused`` ranking; a prediction without them removes older ones, which
        belong to another model's feature space.
        """
        self._check_writable()
        rec = self.record(name)
        ref = self.reference(name)
        write_labels(np.asarray(labels), ref, self.prediction_path(name))
        if version is not None:
            vp = self.version_prediction_path(version, name)
            vp.parent.mkdir(parents=True, exist_ok=True)
            write_labels(np.asarray(labels), ref, vp)
        conf_path = self.confidence_path(name)
        if confidence is not None:
            from barl_core.inference.agreement import save_confidence

            if np.shape(confidence) != ref.shape:
                raise GeometryMismatchError(
                    f"confidence of shape {np.shape(confidence)} does not match case {name!r}"
                )
            save_confidence(conf_path, confidence)
        else:
            conf_path.unlink(missing_ok=True)
        feat_path = self.features_path(name)
        if features is not None:
            from barl_core.inference.agreement import save_features

            if np.ndim(features) != 2 or np.shape(features)[0] != ref.shape[0]:
                raise GeometryMismatchError(
                    f"features of shape {np.shape(features)} do not give one row per slice of "
                    f"case {name!r} ({ref.shape[0]} slices)"
                )
            save_features(feat_path, features)
        else:
            feat_path.unlink(missing_ok=True)
        score = None
        if disagreement is not None:
            dis = np.asarray(disagreement, dtype=np.float32)
            if dis.shape != ref.shape:
                raise GeometryMismatchError(
                    f"disagreement of shape {dis.shape} does not match case {name!r} {ref.shape}"
                )
            write_volume(ref.with_array(dis), self.disagreement_path(name))
            score = case_score(dis, self.load_labels(name), axis=0)
        rec.predicted = True
        rec.disagreement_score = score
        rec.prediction_model = model or self.current_model
        self._save_state()
        return score

    def load_prediction(self, name: str) -> np.ndarray | None:
        """Return the latest class map of case ``name``, or None before a prediction."""
        p = self.prediction_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        return read_volume(p).array

    def load_disagreement(self, name: str) -> np.ndarray | None:
        """Return the latest disagreement map (float32) of case ``name``, or None."""
        p = self.disagreement_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        return read_volume(p).array.astype(np.float32, copy=False)

    def load_confidence(self, name: str) -> np.ndarray | None:
        """Return the agreement confidence of the latest prediction (float16), if it has one."""
        p = self.confidence_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        from barl_core.inference.agreement import load_confidence

        return load_confidence(p)

    def load_features(self, name: str) -> np.ndarray | None:
        """Return the per-slice features (float32 ``[n_slices, F]``) of the latest prediction.

        None before a prediction, or for one stored without them (older workspaces): the
        ranking then runs without its feature-space factor.
        """
        p = self.features_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        from barl_core.inference.agreement import load_features

        return load_features(p)

    def load_version_prediction(self, version: str, name: str) -> np.ndarray | None:
        """Return model version ``version``'s class map of case ``name``, or None."""
        p = self.version_prediction_path(version, name)
        return read_volume(p).array if p.exists() else None

    def disagreement_scores(self) -> dict[str, float]:
        """Per predicted case, its cached disagreement score (the versions' disagreement trend).

        Not the case order: the app ranks cases with the live ``focused`` ranking
        (:meth:`~barl_core.workspace.session.Session.case_ranking`).
        """
        return {
            n: float(r.disagreement_score)
            for n, r in self._cases.items()
            if r.predicted and r.disagreement_score is not None
        }
