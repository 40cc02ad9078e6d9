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
    disagreement and confidence per case; ``predict(cases)`` blocks.
Suggest
    ``suggest_slices(case)`` (the focused ranking), ``slice_profile(case)`` (what the
    minimap draws: the ranking's per-slice quantity), ``suggest_cases()``, ``advise(case)``
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.active.proposals import NEEDS_HUMAN, fill_proposal, gate
from barl_core.data.case_names import sanitize_case_name
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import BarlError, InputFileError
from barl_core.io.volume import Volume, read_volume, strip_extension, write_labels
from barl_core.runtime.process import JobHandle
from barl_core.runtime.protocol import ProgressUpdate
from barl_core.workspace.labels import check_slice
from barl_core.workspace.layout import WORKSPACE_FILE, Workspace

__all__ = ["Session", "SessionJob", "TrainingPlan", "PredictionOutcome", "EXPORT_KINDS"]

#: What :meth:`Session.export` can write.
EXPORT_KINDS = ("final", "labels", "prediction")
#: Hidden folders inside the workspace that a job writes to.
_TRAIN_LABELS_DIR = ".train_labels"
_PREDICT_JOB_DIR = ".job"


@dataclass
class TrainingPlan:
    """What a training run learns from: its label folder and the data snapshot.

    Attributes
    ----------
    labels_dir : Path
        The workspace labels with the frozen validation slices set to the ignore value.
    data_snapshot : dict of str to list of int
        Every annotated slice per case when the run started.
    training_slices, validation_slices : dict of str to list of int
        The snapshot split into what the run sees and what scores it.
    """

    labels_dir: Path
    data_snapshot: dict
    training_slices: dict
    validation_slices: dict

    def version_info(self) -> dict:
        """Return the keyword arguments :meth:`VersionStore.add` records for this plan."""
        return {
            "data_snapshot": self.data_snapshot,
            "training_slices": self.training_slices,
            "validation_slices": self.validation_slices,
        }


@dataclass
class SessionJob:
    """A running child-process job and what :meth:`Session.finish` needs to file its result.

    Attributes
    ----------
    kind : {"training", "prediction"}
    handle : JobHandle
        Poll it (``handle.poll()``) for :class:`~barl_core.runtime.protocol.ProgressUpdate`;
        ``cancel()`` stops it (training keeps its last checkpoint).
    out_dir : Path
        The run folder (training) or the job's output folder (prediction).
    cases : list of str
        Prediction: the cases it predicts.
    info : dict
        Training: what the new version records (config, data snapshot, note).
    version : str or None
        Prediction: the model version that predicts (its predictions are filed under it).
    """

    kind: str
    handle: JobHandle
    out_dir: Path
    cases: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    version: str | None = None

    def poll(self) -> list[ProgressUpdate]:
        """Return updates since the last call (the last one is final once the child has ended)."""
        return self.handle.poll()

    def cancel(self) -> None:
        """Ask the child to stop (non-blocking)."""
        self.handle.cancel()

    def is_running(self) -> bool:
        """Return True while the child is alive."""
        return self.handle.is_running()


@dataclass
class PredictionOutcome:
    """What a finished prediction job filed.

    Attributes
    ----------
    cases : list of str
        Cases whose prediction is now stored in the workspace.
    missing : list of str
        Cases the job wrote nothing for (cancelled before them, or failed).
    metrics : dict or None
        The predicting version's score on the frozen validation slices, if it could be scored.
    """

    cases: list
    missing: list
    metrics: dict | None = None


class Session:
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

    # ------------------------------------------------------------------ train
    def prepare_training(self) -> TrainingPlan:
        """Freeze new validation slices and write the training label folder.

        Raises
        ------
        BarlError
            When every annotated slice is held out for validation.
        """
        from barl_core.workspace.validation import materialize_training_labels

        ws = self.workspace
        annotated = {c: ws.annotated_slices(c) for c in ws.cases}
        ws.validation.update(annotated)
        out = ws.models_dir / _TRAIN_LABELS_DIR
        train = materialize_training_labels(ws, ws.validation, out)
        if not train:
            raise BarlError(
                "every annotated slice is held out for validation: annotate more slices"
            )
        return TrainingPlan(
            labels_dir=out,
            data_snapshot={c: z for c, z in annotated.items() if z},
            training_slices=train,
            validation_slices=ws.validation.validation_slices(annotated),
        )

    def start_training(self, config: Any, *, fine_tune: bool = False) -> SessionJob:
        """Train (or fine-tune the current model) in a child process; returns at once.

        Parameters
        ----------
        config : TrainConfig
            The run's configuration; its class names should be :attr:`class_names`.
        fine_tune : bool
            Start from the current model's weights instead of from scratch.

        Raises
        ------
        EmptyDatasetError
            Nothing is annotated yet.
        BarlError
            ``fine_tune`` without a current model, or all slices held out.
        """
        from barl_core.errors import EmptyDatasetError
        from barl_core.runtime.jobs import TrainJob

        ws = self.workspace
        if not self.has_annotations():
            raise EmptyDatasetError(
                "nothing to learn from yet: paint at least one slice "
                "(or mark one as all background) before training"
            )
        init_from = ws.current_model_path() if fine_tune else None
        if fine_tune and (init_from is None or not init_from.exists()):
            raise BarlError("no current model to fine-tune: train one first")
        plan = self.prepare_training()
        out_dir = ws.new_run_dir("finetune" if fine_tune else "run")
        handle = TrainJob.start(config, ws.images_dir, plan.labels_dir, out_dir, init_from=init_from)
        note = f"fine-tuned from {init_from.parent.name}" if init_from else "trained from scratch"
        # a fine-tune's parent is the model it starts from; a run from scratch has none
        parent = self.current_version_id() if fine_tune else None
        info = dict(plan.version_info(), config=config.to_dict(), note=note, parent=parent)
        return SessionJob("training", handle, out_dir, info=info)

    def _finish_training(self, job: SessionJob, final: ProgressUpdate | None):
        """Adopt the run's model as the next version.

        A cancelled run is not adopted: the user stopped it, so its last checkpoint (kept in
        the run folder) must not silently become the working model.
        """
        if final is None or final.kind in ("error", "cancelled"):
            return None
        path = Path(final.result_path) if final.result_path else None
        if path is not None and path.is_dir():
            path = path / "model.pt"
        if path is None or not path.exists():
            cands = sorted(job.out_dir.rglob("*.pt"), key=lambda p: p.stat().st_mtime)
            path = cands[-1] if cands else None
        if path is None:
            raise BarlError("training finished but wrote no model file")
        return self.workspace.add_version(path, **dict(job.info))

    # ------------------------------------------------------------------ versions
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

    # ------------------------------------------------------------------ predict
    def start_prediction(self, cases: Sequence[str] | None = None) -> SessionJob:
        """Predict ``cases`` (default all) with the working model in a child process.

        Each prediction keeps the branches' agreement confidence (for proposals) and is
        filed under the working model's version (for comparisons and validation).
        """
        from barl_core.runtime.jobs import PredictJob

        ws = self.workspace
        model = ws.current_model_path()
        if model is None or not model.exists():
            raise BarlError("no trained model yet: train one first")
        cases = list(ws.cases if cases is None else cases)
        if not cases:
            raise InputFileError("no case to predict: add or open a case first")
        for c in cases:
            ws.record(c)
        out_dir = ws.predictions_dir / _PREDICT_JOB_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in out_dir.iterdir():
            if f.is_file():
                f.unlink()
        images = [ws.image_path(c) for c in cases]
        handle = PredictJob.start(model, images, out_dir, agreement=True)
        return SessionJob("prediction", handle, out_dir, cases=cases,
                          version=self.current_version_id())

    def _finish_prediction(self, job: SessionJob) -> PredictionOutcome:
        """Store what the job wrote (labels, disagreement, confidence) and score the version."""
        from barl_core.inference.agreement import load_confidence
        from barl_core.inference.outputs import output_paths

        ws, vid = self.workspace, job.version
        done, missing = [], []
        for case in job.cases:
            lab_path, dis_path, conf_path = output_paths(job.out_dir, case)
            if not lab_path.exists():
                missing.append(case)
                continue
            dis = read_volume(dis_path).array if dis_path.exists() else None
            conf = load_confidence(conf_path) if conf_path.exists() else None
            score = ws.set_prediction(case, read_volume(lab_path).array, dis, confidence=conf,
                                      version=vid)
            if vid is not None:
                ws.versions.set_disagreement(vid, case, score)
            done.append(case)
        metrics = self.evaluate_version(vid) if vid is not None else None
        return PredictionOutcome(done, missing, metrics)

    # ------------------------------------------------------------------ jobs
    def finish(self, job: SessionJob, final: ProgressUpdate | None):
        """File a job's result once its final update arrived.

        Returns
        -------
        ModelVersion or None
            Training: the adopted version (None when it failed or was cancelled: a
            cancelled run leaves the working model as it was).
        PredictionOutcome
            Prediction: the cases filed (also after a cancel: those already written).
        """
        if job.kind == "training":
            return self._finish_training(job, final)
        return self._finish_prediction(job)

    def run(
        self,
        job: SessionJob,
        on_update: Callable[[ProgressUpdate], None] | None = None,
        *,
        poll_s: float = 0.2,
    ):
        """Wait for ``job`` (calling ``on_update`` for each update), then :meth:`finish` it.

        Raises
        ------
        BarlError
            The job ended with an error (its message).
        """
        final = None
        while final is None:
            for upd in job.poll():
                if on_update is not None:
                    on_update(upd)
                if upd.is_final:
                    final = upd
            if final is None:
                time.sleep(poll_s)
        if final.kind == "error":
            raise BarlError(f"{job.kind} failed: {final.message}")
        return self.finish(job, final)

    def train(
        self,
        config: Any,
        *,
        fine_tune: bool = False,
        on_update: Callable[[ProgressUpdate], None] | None = None,
        predict_cases: Sequence[str] = (),
    ):
        """Train (blocking), adopt the version, then predict its validation cases to score it.

        ``predict_cases`` are predicted too (e.g. the case on screen). Returns the version.
        """
        version = self.run(self.start_training(config, fine_tune=fine_tune), on_update)
        cases = sorted(set(self.evaluation_cases()) | set(predict_cases))
        if version is not None and cases:
            self.predict(cases, on_update)
        return version

    def predict(
        self,
        cases: Sequence[str] | None = None,
        on_update: Callable[[ProgressUpdate], None] | None = None,
    ) -> PredictionOutcome:
        """Predict ``cases`` (default all) with the working model, blocking."""
        return self.run(self.start_prediction(cases), on_update)

    # ------------------------------------------------------------------ suggest
    def suggest_slices(
        self, case: str, top_k: int = 5, min_gap: int = 2, strategy: str = "focused"
    ) -> list:
        """Return the unannotated slices of ``case`` to annotate next, best first (predict first).

        The default ``focused`` ranking (:mod:`barl_core.active.ranking`) is the one the
        active-learning benchmark measured best; each suggestion carries its one-line
        ``reason`` and the per-slice quantity of :meth:`slice_profile` (``uncertainty``).
        """
        from barl_core.active.suggest import suggest_slices

        ws = self.workspace
        dis = ws.load_disagreement(case)
        if dis is None:
            return []
        pred = ws.load_prediction(case) if strategy == "focused" else None
        if strategy == "focused" and pred is None:
            return []
        return list(
            suggest_slices(
                dis, ws.load_labels(case), axis=0, top_k=top_k, min_gap=min_gap,
                strategy=strategy, predicted=pred, num_classes=len(ws.class_names),
                class_names=tuple(ws.class_names),
            )
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
        """Predicted cases ranked by disagreement, fewer annotations first on ties."""
        from barl_core.active.suggest import suggest_cases

        ws = self.workspace
        scores = ws.disagreement_scores()
        if len(scores) < 2:
            return []
        n_annotated = {c: len(ws.annotated_slices(c)) for c in scores}
        return list(suggest_cases(scores, n_annotated, top_k=top_k))

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

