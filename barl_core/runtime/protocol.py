"""What a job's child and its parent say to each other: updates, framing, the cancel byte.

A child reports :class:`ProgressUpdate` objects, each written as one length-prefixed
pickle (:func:`write_message`) on its update pipe; the parent reads them back with
:func:`read_message`. The parent writes :data:`CANCEL` to the child's stdin to ask it to
stop. A job's target starts with :func:`child_setup` and ends with :func:`child_finish`;
:func:`error_update` turns an exception into the final ``error`` update.
Used by :mod:`barl_core.runtime.process` (the parent) and :mod:`barl_core.runtime.child`.
"""

from __future__ import annotations

import pickle
import signal
import struct
import traceback
from dataclasses import dataclass, field
from typing import Any, BinaryIO

__all__ = [
    "ProgressUpdate",
    "UPDATE_KINDS",
    "FINAL_KINDS",
    "CANCEL",
    "write_message",
    "read_message",
    "child_setup",
    "child_finish",
    "error_update",
]

UPDATE_KINDS = ("progress", "message", "done", "error", "cancelled")
FINAL_KINDS = ("done", "error", "cancelled")
#: The control byte that asks the child to stop (on its stdin).
CANCEL = b"C"
_LEN = struct.Struct("!Q")


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
    metrics : dict of str to float
        Training, after a validation: its scores under the keys ``metrics.jsonl`` uses
        (``val_dice``, ``val_dice_<c>``, ``val_overreach``, ``val_best``, ``val_best_iteration``).
    plan : dict or None
        Training with a time budget: the plan the run follows, once made
        (:meth:`barl_core.training.planner.TrainingPlan.to_dict`).
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
    metrics: dict = field(default_factory=dict)
    plan: dict | None = None

    @property
    def is_final(self) -> bool:
        """Whether this update ends the job (``done``, ``error`` or ``cancelled``)."""
        return self.kind in FINAL_KINDS


def write_message(stream: BinaryIO, obj: Any) -> None:
    """Write ``obj`` as one length-prefixed pickle (the job pipe's framing) and flush."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    """Read one message written by :func:`write_message`; raise ``EOFError`` at the end."""
    head = _read_exactly(stream, _LEN.size)
    return pickle.loads(_read_exactly(stream, _LEN.unpack(head)[0]))


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError("the job pipe closed")
        buf += chunk
    return buf


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
    """Return the ``error`` update for ``exc``: a BarlError's own message, else a short traceback."""
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
