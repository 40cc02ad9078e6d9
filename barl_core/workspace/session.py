"""The annotation session: every use-case the app performs, without Qt.

Why a session: the loop a radiologist runs in napari (annotate, train, look at the model
versions, predict, follow the suggestions, accept or reject proposals, export) is domain
logic, not display logic. Living here, it is the same code for the dock widget, a script
and the CLI, and it is tested headless. The plugin only shows what the session returns
and forwards clicks to it.

A :class:`Session` wraps one :class:`~barl_core.workspace.layout.Workspace` (the folder:
labels, predictions, models) and adds the steps that span several stores (validation
split, model versions, agreement predictions, proposals, provenance).

Long work runs in a child process (:mod:`barl_core.runtime.jobs`): ``start_*`` returns a
:class:`SessionJob` at once; the caller polls it (a Qt timer, a loop) and hands its final
update to :meth:`Session.finish`, which files the result (adopts the model as a version,
collects the predictions). :meth:`Session.run` does both for a script, blocking.

The class is one facade over use-case mixins, one module each: this module (open, fill,
annotate, export), :mod:`~barl_core.workspace.session_jobs` (train, predict: the child
jobs), :mod:`~barl_core.workspace.session_versions` (versions) and
:mod:`~barl_core.workspace.session_review` (suggest, advise, proposals).

API
---
Open and fill
    ``Session.open(folder, class_names=None)``, ``add_file(path)``,
    ``add_volume(volume, name)``, ``adopt_class_names(names)``, ``unique_case_name(text)``
Annotate
    ``save_labels(case, labels)``, ``annotate_slice(case, z, values)``,
    ``mark_slice(case, z, annotated)``, ``revert_slice(case, z, version)``
Train or fine-tune
    ``start_training(config, fine_tune=False) -> SessionJob``; ``finish(job, final)``
    adopts the model as the next version (``v1``, ``v2``...); ``train(config)`` blocks and
    also predicts the validation cases, which scores the new version.
Versions
    ``versions``, ``current_version()``, ``rollback(vid)``, ``compare(a, b, case, z)``,
    ``evaluate_version(vid)``
Predict with agreement
    ``start_prediction(cases) -> SessionJob``; ``finish(job, final)`` stores labels,
    disagreement, confidence and per-slice features per case; ``predict(cases)`` blocks.
Suggest
    ``suggest_slices(case)`` (the focused ranking, with the prediction's per-slice
    features), ``slice_profile(case)`` (what the minimap draws: the ranking's per-slice
    quantity), ``suggest_cases()`` and ``case_ranking()`` (cases ordered by the same
    ranking, each with its best slice and reason), ``advise(case)``
Proposals
    ``proposal(case, threshold)``, ``proposal_values(case, z, threshold)``,
    ``accept_proposal(case, z, threshold)``, ``reject_proposal(case, z)``
Export
    ``export(folder, what, cases)``, ``export_audit(folder, cases)``

Example
-------
>>> s = Session.open("ws", ["background", "tooth"])            # doctest: +SKIP
>>> case = s.add_file("scan.nii.gz")                           # doctest: +SKIP
>>> s.annotate_slice(case, 12, painted_slice)                  # doctest: +SKIP
>>> version = s.train(preset("quick", iterations=200))          # doctest: +SKIP
>>> s.predict([case])                                          # doctest: +SKIP
>>> s.suggest_slices(case)[0].index                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.data.case_names import sanitize_case_name
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError
from barl_core.io.volume import Volume, strip_extension, write_labels
from barl_core.workspace.labels import check_slice
from barl_core.workspace.layout import WORKSPACE_FILE, Workspace
from barl_core.workspace.session_jobs import (
    JobUseCases,
    PredictionOutcome,
    SessionJob,
    TrainingPlan,
)
from barl_core.workspace.session_review import ReviewUseCases
from barl_core.workspace.session_versions import VersionUseCases

__all__ = ["Session", "SessionJob", "TrainingPlan", "PredictionOutcome", "EXPORT_KINDS"]

#: What :meth:`Session.export` can write.
EXPORT_KINDS = ("final", "labels", "prediction")


class Session(JobUseCases, VersionUseCases, ReviewUseCases):
    """The use-cases of the annotation app over one workspace folder.

    Parameters
    ----------
    workspace : Workspace
        The opened workspace; use :meth:`open` to open or create one from a folder.
    """

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    # ------------------------------------------------------------------ open and fill
    @classmethod
    def open(
        cls, folder: str | os.PathLike, class_names: list[str] | None = None, *, read_only: bool = False
    ) -> Session:
        """Open the workspace in ``folder``, creating it (with ``class_names``) if needed.

        A folder with ``workspace.json`` or an ``imagesTr/`` (an MSD dataset) is opened
        as it is; ``class_names`` then does not rename anything. A workspace another process
        has open raises :class:`~barl_core.errors.LockedError`; ``read_only=True`` opens it
        to look, refusing every write.
        """
        folder = Path(folder)
        if read_only:
            return cls(Workspace.open(folder, read_only=True))
        is_ws = (folder / WORKSPACE_FILE).exists() or (folder / "imagesTr").is_dir()
        return cls(Workspace.open(folder) if is_ws else Workspace.create(folder, class_names))

    @property
    def folder(self) -> Path:
        """The workspace folder."""
        return self.workspace.folder

    @property
    def cases(self) -> list[str]:
        """Case names in the order they were added."""
        return self.workspace.cases

    @property
    def class_names(self) -> list[str]:
        """Class names, index = label value."""
        return list(self.workspace.class_names)

    def unique_case_name(self, text: str) -> str:
        """Return a safe case name from free text (a layer or file name) not yet in the workspace."""
        name = sanitize_case_name(text)
        existing = set(self.cases)
        out, i = name, 1
        while out in existing:
            i += 1
            out = f"{name}_{i}"
        return out

    def add_volume(self, volume: Volume, name: str) -> str:
        """Add ``volume`` as a new case named after ``name`` (made safe and unique)."""
        return self.workspace.add_volume(volume, self.unique_case_name(name))

    def add_file(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Add a volume file (or DICOM folder) as a case; return its case name."""
        stem = name or strip_extension(Path(path).name)
        return self.workspace.add_file(path, self.unique_case_name(stem))

    def has_annotations(self) -> bool:
        """Return True when any case has an annotated slice."""
        return any(self.workspace.annotated_slices(c) for c in self.cases)

    def adopt_class_names(self, names: Sequence[str] | None) -> bool:
        """Take ``names`` (e.g. the phantom's) as the class names while nothing is labelled.

        Returns True when the names changed. Once a slice is annotated the classes mean
        something, and only the user renames them.
        """
        if not names or self.has_annotations() or list(names) == self.class_names:
            return False
        self.workspace.set_class_names(list(names))
        return True

    # ------------------------------------------------------------------ annotate
    def save_labels(self, case: str, labels: np.ndarray, **provenance: Any) -> list[int]:
        """Save the case's sparse labels (see :meth:`Workspace.save_labels`); return annotated slices."""
        return self.workspace.save_labels(case, labels, **provenance)

    def annotate_slice(
        self, case: str, z: int, values: np.ndarray, *, how: str | None = None
    ) -> list[int]:
        """Replace slice ``z`` of ``case`` with ``values`` (class ids) and count it annotated."""
        labels = self.workspace.load_labels(case)
        labels[check_slice(z, labels.shape[0])] = values
        return self.save_labels(case, labels, how={int(z): how} if how else None)

    def mark_slice(self, case: str, z: int, annotated: bool = True) -> list[int]:
        """Count slice ``z`` annotated (unpainted = background) or clear it."""
        return self.workspace.mark_slice(case, z, annotated)

    def revert_slice(self, case: str, z: int, version: int) -> list[int]:
        """Put slice ``z`` back to its history ``version`` (undo across restarts)."""
        return self.workspace.revert_slice(case, z, version)

    # ------------------------------------------------------------------ export
    def export(
        self, folder: str | os.PathLike, what: str = "labels", cases: Sequence[str] | None = None
    ) -> tuple[list[Path], list[str]]:
        """Write label maps as NIfTI on the source grid: ``final``, ``labels`` or ``prediction``.

        ``final`` is what a user means by "the segmentation": their labels (accepted
        proposals included) where they annotated, the prediction everywhere else
        (:func:`~barl_core.workspace.audit.final_mask`); without a prediction it is their
        labels. No export holds the workspace's 255 ("not annotated"), which other tools
        would show as a label: unannotated voxels are written as background (0).

        Returns the files written and the cases skipped (no prediction). Files are named
        ``<case>_<what>.nii.gz``.
        """
        from barl_core.workspace.audit import final_mask

        if what not in EXPORT_KINDS:
            raise InputFileError(f"cannot export {what!r}: choose one of {EXPORT_KINDS}")
        ws = self.workspace
        folder = Path(folder)
        written, skipped = [], []
        for case in list(ws.cases if cases is None else cases):
            labels = ws.load_labels(case)
            pred = None if what == "labels" else ws.load_prediction(case)
            if what == "labels" or (what == "final" and pred is None):
                data = np.where(labels == IGNORE_INDEX, 0, labels).astype(np.uint8)
            elif what == "final":
                data = final_mask(labels, pred)
            else:
                data = pred
            if data is None:
                skipped.append(case)
                continue
            written.append(write_labels(data, ws.reference(case), folder / f"{case}_{what}.nii.gz"))
        return written, skipped

    def export_audit(self, folder: str | os.PathLike, cases: Sequence[str] | None = None) -> list:
        """Write the audit bundle (masks, label tables, JSON + HTML report) of each case."""
        from barl_core.workspace.audit import export_bundle

        cases = list(self.workspace.cases if cases is None else cases)
        if not cases:
            raise InputFileError("no case to export: open a case first")
        return [export_bundle(self.workspace, c, folder) for c in cases]
