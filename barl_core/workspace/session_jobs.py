"""The session's long-running use-cases: train or fine-tune, predict with agreement, as child jobs.

Long work runs in a child process (:mod:`barl_core.runtime.jobs`): ``start_*`` returns a
:class:`SessionJob` at once; the caller polls it (a Qt timer, a loop) and hands its final
update to :meth:`JobUseCases.finish`, which files the result (adopts the model as a version,
collects the predictions). :meth:`JobUseCases.run` does both for a script, blocking. Part of
:class:`~barl_core.workspace.session.Session`; kept apart because it is the one part that
talks to child processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barl_core.errors import BarlError, InputFileError
from barl_core.io.volume import read_volume
from barl_core.runtime.process import JobHandle
from barl_core.runtime.protocol import ProgressUpdate

__all__ = ["JobUseCases", "SessionJob", "TrainingPlan", "PredictionOutcome"]

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


class JobUseCases:
    """Session mixin: training and prediction jobs (uses ``self.workspace`` and the versions mixin)."""

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

    def start_training(
        self, config: Any, *, fine_tune: bool = False, time_budget_s: float | None = None
    ) -> SessionJob:
        """Train (or fine-tune the current model) in a child process; returns at once.

        Parameters
        ----------
        config : TrainConfig
            The run's configuration; its class names should be :attr:`class_names`.
        fine_tune : bool
            Start from the current model's weights instead of from scratch.
        time_budget_s : float, optional
            Plan the patch and iterations to fit this many seconds (the app's ``quick``
            preset: :data:`~barl_core.training.planner.PRESET_TIME_BUDGETS`).

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
        handle = TrainJob.start(
            config, ws.images_dir, plan.labels_dir, out_dir, init_from=init_from,
            time_budget_s=time_budget_s,
        )
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
        info = dict(job.info)
        ran = job.out_dir / "config.json"  # the config the run used (planned, if it was)
        if ran.exists():
            info["config"] = json.loads(ran.read_text(encoding="utf-8"))
        return self.workspace.add_version(path, **info)

    def start_prediction(self, cases: Sequence[str] | None = None) -> SessionJob:
        """Predict ``cases`` (default all) with the working model in a child process.

        Each prediction keeps the branches' agreement confidence (for proposals) and the
        per-slice pooled features of the same pass (the ``focused`` ranking's feature-space
        coverage), and is filed under the working model's version (for comparisons and
        validation).
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
        handle = PredictJob.start(model, images, out_dir, agreement=True, features=True)
        return SessionJob("prediction", handle, out_dir, cases=cases,
                          version=self.current_version_id())

    def _finish_prediction(self, job: SessionJob) -> PredictionOutcome:
        """Store what the job wrote (labels, disagreement, confidence, features); score the version."""
        from barl_core.inference.agreement import load_confidence, load_features
        from barl_core.inference.outputs import features_path, output_paths

        ws, vid = self.workspace, job.version
        done, missing = [], []
        for case in job.cases:
            lab_path, dis_path, conf_path = output_paths(job.out_dir, case)
            if not lab_path.exists():
                missing.append(case)
                continue
            dis = read_volume(dis_path).array if dis_path.exists() else None
            conf = load_confidence(conf_path) if conf_path.exists() else None
            feat_path = features_path(job.out_dir, case)
            feats = load_features(feat_path) if feat_path.exists() else None
            score = ws.set_prediction(case, read_volume(lab_path).array, dis, confidence=conf,
                                      version=vid, features=feats)
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
