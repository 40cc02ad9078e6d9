"""Run training and prediction in a child process, with typed progress updates over a queue.

Why a child process and not a thread: heavy torch work in a GUI process slows the viewer
(the GIL, torch's thread pools competing with Qt), and CUDA memory allocated there is never
returned until the application exits. A child started with the ``spawn`` method (never
``fork``: a forked copy of a process holding torch, CUDA or Qt state can deadlock) does the
work; when it ends, its memory (GPU included) goes with it.

The child reports :class:`ProgressUpdate` objects through a ``multiprocessing`` queue; the
parent drains them without blocking (:meth:`JobHandle.poll`, e.g. from a Qt timer). Exactly
one *final* update ends every job: ``done`` (with ``result_path``), ``cancelled`` (with the
last checkpoint, if any) or ``error`` (with the message and the exception type). If the child
dies without one (killed, crashed interpreter), :meth:`JobHandle.poll` makes up an ``error``
update, so a caller never waits forever.

Example
-------
>>> handle = TrainJob.start(config, "ds/imagesTr", "ds/labelsTr", "run")   # doctest: +SKIP
>>> while handle.is_running():                                          # doctest: +SKIP
...     for update in handle.poll():
...         print(update.kind, update.iteration, update.total)
...     time.sleep(0.2)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ProgressUpdate",
    "JobHandle",
    "TrainJob",
    "PredictJob",
    "UPDATE_KINDS",
    "FINAL_KINDS",
    "start_job",
    "child_setup",
    "child_finish",
    "error_update",
]

UPDATE_KINDS = ("progress", "message", "done", "error", "cancelled")
FINAL_KINDS = ("done", "error", "cancelled")
#: Seconds a cancelled child gets to write its checkpoint before it is terminated.
DEFAULT_GRACE_S = 30.0
#: Seconds to wait for a child to exit after its final update.
_REAP_TIMEOUT_S = 3.0


@dataclass
class ProgressUpdate:
    """One message from a job's child process (plain data, so it pickles across processes).

    Attributes
    ----------
    kind : {"progress", "message", "done", "error", "cancelled"}
    iteration, total : int
        Training iterations, or (prediction) cases done out of the total.
    losses : dict of str to float
        Loss terms of the last logged iteration (training).
    its_per_s, eta_s : float or None
        Speed and estimated seconds left.
    message : str
        Human-readable text (the error message for ``error``).
    result_path : str or None
        ``done``: the model file (training) or the output folder (prediction);
        ``cancelled``: the checkpoint written at cancellation, if any.
    error_type : str or None
        Class name of the exception behind an ``error`` (e.g. ``"EmptyDatasetError"``).
    """

    kind: str
    iteration: int = 0
    total: int = 0
    losses: dict = field(default_factory=dict)
    its_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""
    result_path: str | None = None
    error_type: str | None = None

    @property
    def is_final(self) -> bool:
        return self.kind in FINAL_KINDS


def _context() -> mp.context.BaseContext:
    return mp.get_context("spawn")


# --------------------------------------------------------------------------- parent side
class JobHandle:
    """The parent's view of one running job.

    Parameters
    ----------
    process : multiprocessing.Process
        The started child.
    updates : multiprocessing.Queue
        What the child reports on.
    cancel_event : multiprocessing.Event
        Set by :meth:`cancel`; the child's :class:`~barl_core.training.trainer.CancelToken` watches it.
    grace_s : float
        After :meth:`cancel`, how long the child may take to stop by itself before it is
        terminated.
    """

    def __init__(self, process: Any, updates: Any, cancel_event: Any, kind: str, grace_s: float = DEFAULT_GRACE_S):
        self.process = process
        self.kind = kind
        self.grace_s = float(grace_s)
        self._queue = updates
        self._event = cancel_event
        self._cancel_time: float | None = None
        self._final: ProgressUpdate | None = None
        self._terminated = False
        self._exitcode: int | None = None
        self._closed = False
        self._waited: list[ProgressUpdate] = []
        self.last_progress: ProgressUpdate | None = None

    # -- state -----------------------------------------------------------------------
    @property
    def exitcode(self) -> int | None:
        """The child's exit code once it has ended (negative: killed by that signal)."""
        if self._closed:
            return self._exitcode
        return self.process.exitcode

    @property
    def final_update(self) -> ProgressUpdate | None:
        """The ``done``/``error``/``cancelled`` update, once received."""
        return self._final

    def is_running(self) -> bool:
        """True while the child is alive (a cancelled child past its grace period is terminated)."""
        if self._closed:
            return False
        self._enforce_grace()
        return self.process.is_alive()

    # -- control ---------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the child to stop: training writes a checkpoint and exits; prediction stops
        between windows. Non-blocking; the child is terminated if it has not stopped after
        ``grace_s`` seconds (checked by :meth:`poll`, :meth:`is_running` and :meth:`wait`)."""
        if self._closed or self._final is not None:
            return
        self._event.set()
        if self._cancel_time is None:
            self._cancel_time = time.monotonic()

    def terminate(self) -> None:
        """Stop the child now (no checkpoint); a final ``cancelled`` update follows."""
        if not self._closed and self.process.is_alive():
            self._terminated = True
            self.process.terminate()

    def _enforce_grace(self) -> None:
        if (
            self._cancel_time is not None
            and not self._terminated
            and time.monotonic() - self._cancel_time > self.grace_s
            and self.process.is_alive()
        ):
            self.terminate()

    # -- updates ---------------------------------------------------------------------
    def poll(self) -> list[ProgressUpdate]:
        """Every update received since the last call, without blocking.

        Once the child has ended, the list ends with its final update (made up as
        ``error``, or ``cancelled`` after :meth:`cancel`, when the child sent none) and the
        process and queue are released.
        """
        out, self._waited = self._waited, []
        return out + self._poll_now()

    def _poll_now(self) -> list[ProgressUpdate]:
        if self._closed:
            return []
        self._enforce_grace()
        alive = self.process.is_alive()
        out = self._drain()
        if not alive and self._final is None:
            out += self._drain()  # whatever was flushed just before the exit
            if self._final is None:
                out.append(self._made_up_final())
        if alive and self._final is not None:
            # the child exits right after its final update: reap it now, so that a caller
            # that stops polling at the final update leaves no zombie or open pipe behind
            self.process.join(_REAP_TIMEOUT_S)
            alive = self.process.is_alive()
        if not alive:
            self._release()
        return out

    def _drain(self) -> list[ProgressUpdate]:
        out: list[ProgressUpdate] = []
        while True:
            try:
                upd = self._queue.get_nowait()
            except (queue_module.Empty, EOFError, OSError, ValueError):
                break
            if not isinstance(upd, ProgressUpdate) or self._final is not None:
                continue  # nothing may follow a final update
            if upd.is_final:
                self._final = upd
            elif upd.kind == "progress":
                self.last_progress = upd
            out.append(upd)
        return out

    def _made_up_final(self) -> ProgressUpdate:
        code = self.process.exitcode
        if self._cancel_time is not None:
            upd = ProgressUpdate(
                "cancelled",
                message=f"the {self.kind} job was stopped" + (" (terminated)" if self._terminated else ""),
                result_path=self._fallback_result(),
            )
        else:
            upd = ProgressUpdate(
                "error",
                message=f"the {self.kind} process ended unexpectedly (exit code {code})",
                error_type="ChildProcessError",
            )
        self._final = upd
        return upd

    def _fallback_result(self) -> str | None:
        return None

    def wait(self, timeout: float | None = None) -> ProgressUpdate | None:
        """Block until the job ends (or ``timeout`` seconds pass), draining updates meanwhile.

        Returns the final update (None on timeout). The updates gathered while waiting are
        not lost: the next :meth:`poll` returns them.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._waited.extend(self._poll_now())
            if self._closed:
                return self._final
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self.process.join(0.05)

    def _release(self) -> None:
        """Join the child and free the queue and process handles (file descriptors)."""
        if self._closed:
            return
        self.process.join(timeout=5)
        self._exitcode = self.process.exitcode
        try:
            self._queue.close()
            self._queue.join_thread()
        except (OSError, ValueError, AssertionError):
            pass
        for conn in (getattr(self._queue, "_reader", None), getattr(self._queue, "_writer", None)):
            try:
                if conn is not None:
                    conn.close()
            except OSError:
                pass
        try:
            self.process.close()
        except ValueError:  # still running (join timed out): leave it to the OS
            pass
        self._closed = True

    def __enter__(self) -> JobHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._closed:
            self.cancel()
            self.wait(self.grace_s + 5)
            if not self._closed:
                self.terminate()
                self.wait(5)


class _TrainHandle(JobHandle):
    """A training handle knows where a cancelled run keeps its checkpoints."""

    def __init__(self, *args: Any, out_dir: Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.out_dir = out_dir

    def _fallback_result(self) -> str | None:
        ckpts = sorted((self.out_dir / "checkpoints").glob("ckpt_*.pt"))
        return str(ckpts[-1]) if ckpts else None


def start_job(target: Any, args: tuple, kind: str, grace_s: float, handle_cls: type = JobHandle,
              **extra: Any) -> JobHandle:
    """Start ``target(updates, event, *args)`` in a child process and return its handle.

    The one way every job of this package (and of :mod:`barl_core.inference.agreement`) reaches a child,
    so that all of them share the spawn context, the queue/event protocol and the handle.

    Parameters
    ----------
    target
        A module-level function (spawn pickles it by name) that starts with
        :func:`child_setup` and ends with :func:`child_finish`.
    args
        Picklable arguments after the update queue and the cancel event.
    kind
        ``"training"`` or ``"prediction"``: the handle's ``kind`` and the process name.
    grace_s
        Seconds a cancelled child gets before it is terminated.
    handle_cls, **extra
        A :class:`JobHandle` subclass and its extra keyword arguments.
    """
    ctx = _context()
    updates = ctx.Queue()
    event = ctx.Event()
    proc = ctx.Process(target=target, args=(updates, event, *args), name=f"barl-{kind}", daemon=True)
    proc.start()
    return handle_cls(proc, updates, event, kind, grace_s, **extra)


class TrainJob:
    """Training (:func:`barl_core.training.trainer.train`) in a child process."""

    @staticmethod
    def start(
        config: Any,
        images_dir: str | os.PathLike,
        labels_dir: str | os.PathLike | None,
        out_dir: str | os.PathLike,
        init_from: str | os.PathLike | None = None,
        resume: bool = False,
        *,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> JobHandle:
        """Start training; returns at once with the child's :class:`JobHandle`.

        Parameters
        ----------
        config : TrainConfig or dict
            The run's config (sent as a plain dict).
        images_dir, labels_dir, out_dir, init_from, resume
            As in :func:`barl_core.training.trainer.train`.

        Notes
        -----
        The ``done`` update's ``result_path`` is ``out_dir/model.pt``; ``cancelled`` carries
        the checkpoint written at cancellation.
        """
        cfg = config if isinstance(config, dict) else config.to_dict()
        args = (
            cfg,
            str(images_dir),
            None if labels_dir is None else str(labels_dir),
            str(out_dir),
            None if init_from is None else str(init_from),
            bool(resume),
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
        overlap: float = 0.5,
        num_threads: int | None = None,
        grace_s: float = 10.0,
    ) -> JobHandle:
        """Start predicting; returns at once with the child's :class:`JobHandle`.

        Writes ``out_dir/NAME.nii.gz`` and ``NAME_disagreement.nii.gz`` (into
        ``disagreement_dir``, default ``out_dir``) and, with ``agreement``, the agreement
        confidence ``NAME_confidence.npz`` that proposals need (see
        :func:`barl_core.inference.outputs.output_paths`). Progress updates count cases
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
        )
        return start_job(_predict_child, args, "prediction", grace_s)


# --------------------------------------------------------------------------- child side
def child_setup(updates: Any) -> None:
    """First call of a job's child function: the child ignores Ctrl-C (the parent decides)."""
    # Ctrl-C in the terminal reaches the whole process group: the parent decides, not us.
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # pragma: no cover
        pass


def child_finish(updates: Any, final: ProgressUpdate) -> None:
    """Last call of a job's child function: send ``final`` and flush the queue before exiting."""
    try:
        updates.put(final)
    finally:
        updates.close()
        updates.join_thread()  # flush before the process exits


def error_update(exc: BaseException) -> ProgressUpdate:
    """The ``error`` update for ``exc``: a BarlError's own message, else a short traceback."""
    from barl_core.errors import BarlError

    name = type(exc).__name__
    text = str(exc).strip() or name
    if isinstance(exc, BarlError):
        message = text
    elif "out of memory" in text.lower():
        message = f"out of memory: {text.splitlines()[0]}; use a smaller patch/batch or the CPU device"
    else:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        message = f"{name}: {text}\n{''.join(tb[-3:])}"
    return ProgressUpdate("error", message=message, error_type=name)


def _train_child(updates: Any, event: Any, cfg: dict, images_dir: str, labels_dir: str | None,
                 out_dir: str, init_from: str | None, resume: bool) -> None:
    child_setup(updates)
    if event.is_set():  # cancelled before we even started: nothing to save
        child_finish(updates, ProgressUpdate("cancelled", message="cancelled before training started"))
        return
    final: ProgressUpdate
    try:
        from barl_core.training.config import TrainConfig
        from barl_core.training.trainer import CancelToken, TrainProgress, train

        config = TrainConfig.from_dict(cfg)
        updates.put(ProgressUpdate("message", total=config.iterations, message="loading data"))

        def report(p: TrainProgress) -> None:
            updates.put(ProgressUpdate(
                "progress", iteration=p.iteration, total=p.total, losses=dict(p.losses),
                its_per_s=float(p.its_per_s), eta_s=float(p.eta_s),
            ))

        from barl_core.runtime.lock import FolderLock

        with FolderLock(out_dir, "a training job"):  # one writer per run folder (issue 14)
            result = train(config, images_dir, labels_dir, out_dir, resume=resume, init_from=init_from,
                           callback=report, cancel=CancelToken(event))
        kind = "done" if result.status == "completed" else "cancelled"
        final = ProgressUpdate(
            kind, iteration=result.iterations_done, total=config.iterations,
            losses={k: v for k, v in (result.history[-1] if result.history else {}).items()
                    if k not in ("iteration", "time", "its_per_s")},
            message=f"{result.status} after {result.iterations_done} iterations",
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
                   agreement: bool = False) -> None:
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
        from barl_core.training.trainer import CancelToken

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
                                    overlap=overlap, agreement=agreement)
            final = ProgressUpdate("done", iteration=n, total=n, message=f"predicted {len(written)} case(s)",
                                   result_path=str(out_dir))
        except CancelledError as exc:
            final = ProgressUpdate("cancelled", total=n, message=str(exc), result_path=str(out_dir))
    except BaseException as exc:  # noqa: BLE001
        final = error_update(exc)
    child_finish(updates, final)
