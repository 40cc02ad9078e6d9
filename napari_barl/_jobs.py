"""Training and prediction jobs: start them through the session, follow them, file them.

Why a controller: a job spans several panels (the training panel's settings and progress,
the review panel's progress) and ends by changing shared state (``state.model`` after
training, ``state.predictions`` after prediction), to which the views react. Heavy work
runs in a child process (:mod:`barl_core.runtime.jobs`) polled by
:class:`~napari_barl._progress.JobRunner`, so the event loop never waits on torch.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QObject

from barl_core.errors import BarlError, InputFileError
from barl_core.workspace.session import SessionJob

from ._case_view import CaseView
from ._notify import guarded, notify
from ._progress import JobRunner
from ._review_panel import ReviewPanel
from ._state import BarlState
from ._training_panel import TrainingPanel

__all__ = ["JobController"]


class JobController(QObject):
    """Run one job at a time and show its progress in the training or review panel.

    Parameters
    ----------
    view : CaseView
        The open case (saved before training; predicted after it).
    state : BarlState
        The dock's shared state (``job``, ``model`` and ``predictions`` are set here).
    training, review : TrainingPanel, ReviewPanel
        The panels whose buttons start jobs and that show their progress.
    """

    def __init__(
        self,
        view: CaseView,
        state: BarlState,
        training: TrainingPanel,
        review: ReviewPanel,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.view, self.state, self.training, self.review = view, state, training, review
        self._job: SessionJob | None = None
        self.runner = JobRunner(parent=self)
        self.runner.update.connect(self._on_update)
        self.runner.finished.connect(self._on_finished)
        training.train_requested.connect(self.start_training)
        training.cancel_requested.connect(self.cancel)
        review.predict_requested.connect(self.start_prediction)
        for name in ("session", "read_only", "job", "model"):
            getattr(state.events, name).connect(lambda *_: self._update_enabled())
        self._update_enabled()

    def _update_enabled(self) -> None:
        running, has_model = self.runner.is_running(), self.state.has_model
        writable = self.state.can_write
        self.training.set_running(running, writable and has_model)
        self.training.train_btn.setEnabled(writable and not running)
        self.review.set_running(running or not writable, has_model)

    def is_busy(self) -> bool:
        """Return True while a job runs."""
        return self.runner.is_running()

    def cancel(self) -> None:
        """Ask the running job to stop (the working model stays as it was)."""
        self.runner.cancel()

    # ------------------------------------------------------------------ start
    @guarded
    def start_training(self, fine_tune: bool = False) -> None:
        """Train (or fine-tune the current model) in a child process."""
        session = self.state.require_session()
        if self.runner.is_running():
            raise BarlError("a job is already running: wait for it or cancel it")
        self.view.save_now()
        if not session.has_annotations():
            notify(
                "warning",
                "nothing to learn from yet: paint at least one slice "
                "(or mark one as all background) before training",
            )
            return
        config = self.training.build_config(session.class_names)
        budget = self.training.time_budget_s()  # the quick preset: planned to fit it
        self._start(session.start_training(config, fine_tune=fine_tune, time_budget_s=budget))

    @guarded
    def start_prediction(self, all_cases: bool = False, cases: list[str] | None = None) -> None:
        """Predict the open case (or all cases) with the working model, off-process.

        Each prediction also keeps the branches' agreement confidence (for proposals) and
        is filed under the working model's version (for comparisons and validation).
        """
        session = self.state.require_session()
        if self.runner.is_running():
            raise BarlError("a job is already running: wait for it or cancel it")
        if cases is None:
            case = self.state.case
            cases = session.cases if all_cases else ([case] if case else [])
        if not cases:
            raise InputFileError("open a case first")
        self._start(session.start_prediction(cases))

    def _start(self, job: SessionJob) -> None:
        self._job = job
        if job.kind == "training":
            self.training.start_display("training")
        else:
            self.review.progress.setValue(0)
            self.review.status.setText("prediction: starting...")
        self.runner.start(job.handle, job.kind)
        self.state.job = job.kind

    # ------------------------------------------------------------------ follow
    def _on_update(self, upd) -> None:
        if self._job.kind == "training":
            self.training.show_update(upd, "training")
            return
        total = getattr(upd, "total", 0) or 0
        if total:
            self.review.progress.setValue(int(100 * min(upd.iteration, total) / total))
        msg = getattr(upd, "message", "") or ""
        self.review.status.setText(f"prediction: {msg or f'{upd.iteration}/{total}'}")

    @guarded
    def _on_finished(self, upd) -> None:
        job = self._job
        kind, session = job.kind, self.state.session
        try:
            if upd is None or upd.kind == "error":
                msg = getattr(upd, "message", None) or f"the {kind} process ended unexpectedly"
                if "out of memory" in msg.lower():
                    msg += " (try a smaller patch size or the CPU device)"
                self._end_display(kind, f"{kind} failed", False)
                notify("error", f"{kind} failed: {msg}")
            elif upd.kind == "cancelled":
                # a cancelled run is not a model version: the working model stays as it was
                # (its last checkpoint stays on disk, in the run folder)
                if kind == "training":
                    session.finish(job, upd)
                self._end_display(kind, f"{kind} cancelled: the working model is unchanged", False)
            elif kind == "training":
                self._adopt_model(job, upd)
                # the engine's summary: "completed after 200 iterations", or why it stopped
                # early ("... of 215 iterations: stopped at the time limit (2.0 min)")
                summary = getattr(upd, "message", "") or ""
                self._end_display(kind, f"training {summary}" if summary else "training done", True)
                cases = session.evaluation_cases()
                if self.training.predict_after.isChecked() and self.state.case:
                    cases = sorted(set(cases) | {self.state.case})
                if cases:  # also scores the new version on the frozen validation slices
                    self.start_prediction(False, cases=cases)
                    return
            else:
                outcome = session.finish(job, upd)
                for case in outcome.missing:
                    notify("warning", f"no prediction was written for case {case!r}")
                self.state.predictions += 1  # the views reload them
                self._end_display(kind, "prediction done", True)
        finally:
            if not self.runner.is_running():
                self.state.job = ""
            self._update_enabled()

    def _adopt_model(self, job: SessionJob, upd) -> None:
        """File the run's model as the next version (the session does it) and say so."""
        version = self.state.session.finish(job, upd)
        if version is None:
            return
        self.state.model = version.id
        notify("info", f"model ready: {version.id} ({Path(version.path).parent.name})")

    def _end_display(self, kind: str, text: str, complete: bool) -> None:
        if kind == "training":
            self.training.end_display(text, complete)
            return
        if complete:
            self.review.progress.setValue(100)
        self.review.status.setText(text)
