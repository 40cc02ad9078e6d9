"""Training and prediction as child-process jobs (:mod:`barl_core.runtime.process`).

:class:`TrainJob` runs :func:`barl_core.training.run.train`, :class:`PredictJob` runs
:func:`barl_core.inference.export.predict_files` (with the agreement confidence the GUI's
proposals need, when asked); both return a :class:`~barl_core.runtime.process.JobHandle`
at once. See :mod:`barl_core.runtime.process` for the protocol (updates, cancel, parent
death).

Example
-------
>>> handle = TrainJob.start(config, "ds/imagesTr", "ds/labelsTr", "run")   # doctest: +SKIP
>>> while handle.is_running():                                          # doctest: +SKIP
...     for update in handle.poll():
...         print(update.kind, update.iteration, update.total)
...     time.sleep(0.2)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from barl_core.runtime.process import DEFAULT_GRACE_S, JobHandle, start_job
from barl_core.runtime.protocol import ProgressUpdate, child_finish, child_setup, error_update

__all__ = ["TrainJob", "PredictJob"]


class _TrainHandle(JobHandle):
    """A training handle knows where a cancelled run keeps its checkpoints."""

    def __init__(self, *args: Any, out_dir: Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.out_dir = out_dir

    def _fallback_result(self) -> str | None:
        ckpts = sorted((self.out_dir / "checkpoints").glob("ckpt_*.pt"))
        return str(ckpts[-1]) if ckpts else None


class TrainJob:
    """Training (:func:`barl_core.training.run.train`) in a child process."""

    @staticmethod
    def start(
        config: Any,
        images_dir: str | os.PathLike,
        labels_dir: str | os.PathLike | None,
        out_dir: str | os.PathLike,
        init_from: str | os.PathLike | None = None,
        resume: bool = False,
        *,
        time_budget_s: float | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> JobHandle:
        """Start training; returns at once with the child's :class:`JobHandle`.

        Parameters
        ----------
        config : TrainConfig or dict
            The run's config (sent as a plain dict).
        images_dir, labels_dir, out_dir, init_from, resume
            As in :func:`barl_core.training.run.train`.
        time_budget_s : float, optional
            Plan the patch and the iteration count to fit this many seconds
            (:mod:`barl_core.training.planner`, as ``barl train --time-budget``); the plan
            arrives as a ``message`` update with ``plan`` set.

        Notes
        -----
        The ``done`` update's ``result_path`` is ``out_dir/model.pt``; ``cancelled`` carries
        the checkpoint written at cancellation. The ``done`` message says how the run ended in
        plain words (``TrainResult.summary``), e.g. "completed after 37 of 215 iterations:
        stopped at the time limit (1.9 min)"; the trainer's notices (such as why it stops)
        arrive as ``message`` updates.
        """
        cfg = config if isinstance(config, dict) else config.to_dict()
        args = (
            cfg,
            str(images_dir),
            None if labels_dir is None else str(labels_dir),
            str(out_dir),
            None if init_from is None else str(init_from),
            bool(resume),
            None if time_budget_s is None else float(time_budget_s),
        )
        return start_job(_train_child, args, "training", grace_s, _TrainHandle, out_dir=Path(out_dir))


class PredictJob:
    """Prediction (:func:`barl_core.inference.export.predict_files`) in a child process."""

    @staticmethod
    def start(
        model_path: str | os.PathLike,
        image_paths: Sequence[str | os.PathLike],
        out_dir: str | os.PathLike,
        disagreement_dir: str | os.PathLike | None = None,
        device: str = "auto",
        *,
        agreement: bool = False,
        features: bool = False,
        overlap: float = 0.5,
        num_threads: int | None = None,
        grace_s: float = 10.0,
    ) -> JobHandle:
        """Start predicting; returns at once with the child's :class:`JobHandle`.

        Writes ``out_dir/NAME.nii.gz`` and ``NAME_disagreement.nii.gz`` (into
        ``disagreement_dir``, default ``out_dir``) and, with ``agreement``, the agreement
        confidence ``NAME_confidence.npz`` that proposals need and, with ``features``, the
        per-slice features ``NAME_features.npz`` the ``focused`` ranking uses (see
        :mod:`barl_core.inference.outputs`). Progress updates count cases
        (``iteration`` of ``total``) with a per-window ``message``; ``done`` carries
        ``out_dir`` as ``result_path``.
        """
        args = (
            str(model_path),
            [str(p) for p in image_paths],
            str(out_dir),
            None if disagreement_dir is None else str(disagreement_dir),
            str(device),
            float(overlap),
            num_threads,
            bool(agreement),
            bool(features),
        )
        return start_job(_predict_child, args, "prediction", grace_s)


# --------------------------------------------------------------------------- child side
def _train_child(updates: Any, event: Any, cfg: dict, images_dir: str, labels_dir: str | None,
                 out_dir: str, init_from: str | None, resume: bool,
                 time_budget_s: float | None = None) -> None:
    child_setup(updates)
    if event.is_set():  # cancelled before we even started: nothing to save
        child_finish(updates, ProgressUpdate("cancelled", message="cancelled before training started"))
        return
    final: ProgressUpdate
    try:
        from barl_core.runtime.cancel import CancelToken
        from barl_core.training.config import TrainConfig
        from barl_core.training.run import train
        from barl_core.training.trainer import TrainProgress

        config = TrainConfig.from_dict(cfg)
        updates.put(ProgressUpdate("message", total=config.iterations, message="loading data"))

        def report(p: TrainProgress) -> None:
            if p.message:  # a notice: why the run stops early, a retry, a resumed time limit
                updates.put(ProgressUpdate("message", iteration=p.iteration, total=p.total, message=p.message))
                return
            updates.put(ProgressUpdate(
                "progress", iteration=p.iteration, total=p.total, losses=dict(p.losses),
                its_per_s=float(p.its_per_s), eta_s=float(p.eta_s),
                metrics={f"val_{k}": float(v) for k, v in p.validation.items()
                         if isinstance(v, int | float)},
            ))

        planned = {"iterations": config.iterations}
        planner = None
        if time_budget_s is not None:
            from barl_core.training.planner import PlanRequest, make_planner

            def on_plan(plan: Any) -> None:
                planned["iterations"] = plan.iterations
                updates.put(ProgressUpdate("message", total=plan.iterations, message="plan made",
                                           plan=plan.to_dict()))

            planner = make_planner(PlanRequest(
                time_budget_s=time_budget_s,
                report=lambda text: updates.put(ProgressUpdate("message", message=text)),
            ), on_plan)

        from barl_core.runtime.lock import FolderLock

        with FolderLock(out_dir, "a training job"):  # one writer per run folder (issue 14)
            result = train(config, images_dir, labels_dir, out_dir, resume=resume, init_from=init_from,
                           callback=report, cancel=CancelToken(event), planner=planner)
        kind = "done" if result.status == "completed" else "cancelled"
        final = ProgressUpdate(
            kind, iteration=result.iterations_done, total=planned["iterations"],
            losses={k: v for k, v in (result.history[-1] if result.history else {}).items()
                    if k not in ("iteration", "time", "its_per_s")},
            # "completed after 200 iterations", or why it stopped early (the app's status shows it)
            message=f"{result.status} {result.summary}",
            result_path=str(result.model_path),
        )
    except BaseException as exc:  # noqa: BLE001 - everything travels to the parent
        from barl_core.errors import CancelledError

        if isinstance(exc, CancelledError):
            final = ProgressUpdate("cancelled", message=str(exc))
        else:
            final = error_update(exc)
    child_finish(updates, final)


def _predict_child(updates: Any, event: Any, model_path: str, image_paths: list[str], out_dir: str,
                   disagreement_dir: str | None, device: str, overlap: float, num_threads: int | None,
                   agreement: bool = False, features: bool = False) -> None:
    child_setup(updates)
    if event.is_set():
        child_finish(updates, ProgressUpdate("cancelled", message="cancelled before prediction started"))
        return
    final: ProgressUpdate
    n = len(image_paths)
    try:
        import torch

        from barl_core.errors import CancelledError
        from barl_core.inference.export import predict_files
        from barl_core.inference.model import load_model
        from barl_core.runtime.cancel import CancelToken

        if num_threads:
            torch.set_num_threads(int(num_threads))
        updates.put(ProgressUpdate("message", total=n, message="loading model"))
        model = load_model(model_path, device=device)
        last = [0.0]

        def report(done: int, total: int, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or message.endswith("done"):  # do not flood the queue
                last[0] = now
                updates.put(ProgressUpdate("progress", iteration=done, total=total, message=message))

        try:
            written = predict_files(model, image_paths, out_dir, disagreement_dir, report, CancelToken(event),
                                    overlap=overlap, agreement=agreement, features=features)
            final = ProgressUpdate("done", iteration=n, total=n, message=f"predicted {len(written)} case(s)",
                                   result_path=str(out_dir))
        except CancelledError as exc:
            final = ProgressUpdate("cancelled", total=n, message=str(exc), result_path=str(out_dir))
    except BaseException as exc:  # noqa: BLE001
        final = error_update(exc)
    child_finish(updates, final)
