"""Model versions: every training run of a workspace, with what it learned from and how good it is.

A version records its checkpoint, the training config, a *data snapshot* (which slices of
which case were annotated, and which of them were training vs frozen-validation slices),
its parent version (fine-tuned from), its validation metrics on the frozen validation set
(:mod:`barl_core.workspace.validation`) and the mean disagreement of its predictions per case. Stored
in ``models/versions.json`` (atomic rewrite). Rolling back makes an older version's
checkpoint the workspace's current model again; nothing is deleted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from barl_core.errors import InputFileError
from barl_core.io.volume import atomic_path
from barl_core.workspace.provenance import slice_dice

__all__ = ["ModelVersion", "VersionStore", "compare_slices"]


@dataclass
class ModelVersion:
    """One training run."""

    id: str
    path: str
    created: float
    config: dict = field(default_factory=dict)
    data_snapshot: dict = field(default_factory=dict)
    training_slices: dict = field(default_factory=dict)
    validation_slices: dict = field(default_factory=dict)
    parent: str | None = None
    metrics: dict | None = None
    disagreement: dict = field(default_factory=dict)
    note: str = ""

    @property
    def n_annotated(self) -> int:
        """Annotated slices the version was made from."""
        return sum(len(v) for v in self.data_snapshot.values())

    @property
    def val_dice(self) -> float | None:
        """Mean Dice on the frozen validation slices, once scored."""
        return None if not self.metrics else self.metrics.get("mean_dice")


class VersionStore:
    """The versions of one workspace (``path`` = ``models/versions.json``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.versions: list[ModelVersion] = []
        if self.path.exists():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputFileError(f"{self.path}: unreadable version list: {exc}") from None
            self.versions = [ModelVersion(**v) for v in raw.get("versions", [])]

    def add(
        self,
        path: str,
        *,
        config: dict,
        data_snapshot: dict,
        training_slices: dict | None = None,
        validation_slices: dict | None = None,
        parent: str | None = None,
        note: str = "",
        created: float | None = None,
    ) -> ModelVersion:
        """Record a new version (ids ``v1``, ``v2``... in order); ``created`` defaults to now."""
        vid = f"v{len(self.versions) + 1}"
        v = ModelVersion(
            vid,
            str(path),
            time.time() if created is None else float(created),
            dict(config),
            {c: list(map(int, z)) for c, z in data_snapshot.items() if z},
            {c: list(map(int, z)) for c, z in (training_slices or {}).items()},
            {c: list(map(int, z)) for c, z in (validation_slices or {}).items()},
            parent,
            None,
            {},
            note,
        )
        self.versions.append(v)
        self.save()
        return v

    def get(self, vid: str) -> ModelVersion:
        """Return version ``vid`` (raise a clear error if there is none)."""
        for v in self.versions:
            if v.id == vid:
                return v
        raise InputFileError(f"no model version {vid!r} (have: {[v.id for v in self.versions]})")

    def by_path(self, path: str | None) -> ModelVersion | None:
        """Return the newest version whose checkpoint is ``path``, or None."""
        if path is None:
            return None
        for v in reversed(self.versions):
            if v.path == str(path):
                return v
        return None

    def set_metrics(self, vid: str, metrics: dict | None) -> None:
        """Store version ``vid``'s validation metrics."""
        self.get(vid).metrics = metrics
        self.save()

    def set_disagreement(self, vid: str, case: str, score: float | None) -> None:
        """Store version ``vid``'s disagreement score on ``case`` (None: nothing stored)."""
        if score is not None:
            self.get(vid).disagreement[case] = float(score)
            self.save()

    def learning_curve(self) -> list[tuple[str, int, float]]:
        """``(id, annotated slices, frozen-validation Dice)`` of versions that have a score."""
        return [
            (v.id, v.n_annotated, float(v.val_dice))
            for v in self.versions
            if v.val_dice is not None
        ]

    def disagreement_trend(self) -> list[float]:
        """Mean (over cases) disagreement score of each version that predicted something."""
        return [
            float(np.mean(list(v.disagreement.values()))) for v in self.versions if v.disagreement
        ]

    def save(self) -> None:
        """Write the registry atomically (``models/versions.json``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": "napari-barl-versions", "versions": [asdict(v) for v in self.versions]}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def compare_slices(a: np.ndarray, b: np.ndarray, num_classes: int | None = None) -> dict:
    """How two versions' predictions of one slice differ: Dice and changed-voxel fraction."""
    a, b = np.asarray(a), np.asarray(b)
    return {"dice": slice_dice(a, b, num_classes), "changed_fraction": float(np.mean(a != b))}
