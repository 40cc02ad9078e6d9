"""One generic child-process job: a fresh interpreter, typed updates, cancel, no orphans.

Why a child process and not a thread: heavy torch work in a GUI process slows the viewer
(the GIL, torch's thread pools competing with Qt), and CUDA memory allocated there is never
returned until the application exits. A child does the work; when it ends, its memory (GPU
included) goes with it.

How the child starts: ``python -m barl_core.runtime.child`` (a fresh interpreter, never a
``fork``: a forked copy of a process holding torch, CUDA or Qt state can deadlock). Unlike
``multiprocessing``'s spawn, it does not re-import the parent's ``__main__``: a user script
without an ``if __name__ == "__main__"`` guard is not run again in the child. The target is
named (``module:function``) and imported by name; its arguments travel pickled.

How they talk: the parent writes the job (and later a cancel request) to the child's stdin;
the child writes length-prefixed pickled :class:`~barl_core.runtime.protocol.ProgressUpdate` objects to its original
stdout (its ``print`` output goes to stderr). The parent drains them without blocking
(:meth:`JobHandle.poll`, e.g. from a Qt timer). Exactly one *final* update ends every job:
``done`` (with ``result_path``), ``cancelled`` (with the last checkpoint, if any) or
``error`` (with the message and the exception type). If the child dies without one (killed,
crashed interpreter), :meth:`JobHandle.poll` makes up an ``error`` update, so a caller never
waits forever.

When the parent dies (even by SIGKILL), the kernel closes its end of the child's stdin: the
child sees end-of-file, cancels its work (training writes a checkpoint) and exits; if the
work does not stop within the grace period it exits anyway. No orphan keeps a GPU busy.

Example
-------
>>> handle = start_job(my_module.work, (arg,), "training", grace_s=30)   # doctest: +SKIP
>>> while handle.is_running():                                         # doctest: +SKIP
...     for update in handle.poll():
...         print(update.kind, update.iteration, update.total)
...     time.sleep(0.2)
"""

from __future__ import annotations

import os
import pickle
import queue as queue_module
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from barl_core.runtime.protocol import CANCEL, ProgressUpdate, read_message, write_message

__all__ = ["JobHandle", "start_job", "DEFAULT_GRACE_S"]

#: Seconds a cancelled child gets to write its checkpoint before it is terminated.
DEFAULT_GRACE_S = 30.0
#: Seconds to wait for a child to exit after its final update.
_REAP_TIMEOUT_S = 3.0


class _ChildProcess:
    """The parent's handle on the child interpreter (what JobHandle needs of a process)."""

    def __init__(self, popen: subprocess.Popen, name: str):
        self._popen = popen
        self.name = name
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def terminate(self) -> None:
        if self.is_alive():
            self._popen.terminate()

    def kill(self) -> None:
        if self.is_alive():
            self._popen.kill()

    def close(self) -> None:
        if self.is_alive():
            raise ValueError("the child is still running")
        if self._popen.stdin is not None and not self._popen.stdin.closed:
            try:
                self._popen.stdin.close()
            except OSError:
                pass


class _Updates:
    """The parent's end of the update pipe: a reader thread fills a queue."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._queue: queue_module.Queue = queue_module.Queue()
        self._thread = threading.Thread(target=self._read, name="barl-job-updates", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                self._queue.put(read_message(self._stream))
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                return

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()

    def close(self) -> None:
        self._thread.join(5)
        try:
            self._stream.close()
        except OSError:
            pass

    def join_thread(self) -> None:
        self._thread.join(5)


class _CancelSignal:
    """The parent's cancel flag: setting it sends :data:`CANCEL` down the child's stdin."""

    def __init__(self, stdin: BinaryIO):
        self._stdin = stdin
        self._set = False

    def set(self) -> None:
        self._set = True
        try:
            self._stdin.write(CANCEL)
            self._stdin.flush()
        except (OSError, ValueError):  # the child is gone already
            pass

    def is_set(self) -> bool:
        return self._set


def _target_name(target: Any) -> str:
    module, name = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        raise ValueError(
            f"{target!r}: a job target must be a module-level function of an importable module "
            "(the child imports it by name; it never re-runs the parent's __main__)"
        )
    return f"{module}:{name}"


def _child_env() -> dict[str, str]:
    """Return the parent's environment, with this package importable whatever the parent's sys.path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


# --------------------------------------------------------------------------- parent side
class JobHandle:
    """The parent's view of one running job.

    Parameters
    ----------
    process
        The started child (``is_alive``, ``exitcode``, ``join``, ``terminate``, ``close``).
    updates
        What the child reports on (``get_nowait``, ``close``, ``join_thread``).
    cancel_event
        Set by :meth:`cancel`; the child's :class:`~barl_core.runtime.cancel.CancelToken`
        watches its side of it.
    kind : str
        ``"training"`` or ``"prediction"`` (used in made-up messages).
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
        """Return True while the child is alive (a cancelled child past its grace period is terminated)."""
        if self._closed:
            return False
        self._enforce_grace()
        return self.process.is_alive()

    # -- control ---------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the child to stop (non-blocking).

        Training writes a checkpoint and exits; prediction stops between windows. The child is terminated if it has not stopped after
        ``grace_s`` seconds (checked by :meth:`poll`, :meth:`is_running` and :meth:`wait`).
        """
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
            self._queue.join_thread()  # the reader reaches the end of what the child wrote
            out += self._drain()
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
        """Use the handle as a context manager: the job is stopped on exit."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Cancel the job if it still runs, then terminate it after the grace period."""
        if not self._closed:
            self.cancel()
            self.wait(self.grace_s + 5)
            if not self._closed:
                self.terminate()
                self.wait(5)


def start_job(target: Any, args: tuple, kind: str, grace_s: float = DEFAULT_GRACE_S,
              handle_cls: type = None, **extra: Any) -> JobHandle:
    """Start ``target(updates, event, *args)`` in a fresh child interpreter; return its handle.

    The one way every job of this package reaches a child, so that all of them share the
    start-up, the update/cancel protocol, the parent-death rule and the handle.

    Parameters
    ----------
    target
        A module-level function of an importable module (the child imports it by name),
        that starts with :func:`child_setup` and ends with :func:`child_finish`. In the
        child, ``updates.put(ProgressUpdate)`` reports and ``event.is_set()`` says whether
        the parent asked to stop (or died).
    args
        Picklable arguments after the update channel and the cancel event.
    kind
        ``"training"`` or ``"prediction"``: the handle's ``kind`` and the process name.
    grace_s
        Seconds a cancelled child gets before it is terminated; also how long a child whose
        parent died may take to stop by itself before it exits.
    handle_cls, **extra
        A :class:`JobHandle` subclass and its extra keyword arguments.

    Raises
    ------
    ValueError
        ``target`` is not importable by name (a lambda, a function of ``__main__``).
    """
    name = _target_name(target)
    popen = subprocess.Popen(
        [sys.executable, "-m", "barl_core.runtime.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_child_env(),
        close_fds=True,
    )
    write_message(popen.stdin, {"target": name, "args": tuple(args), "grace_s": float(grace_s)})
    handle_cls = handle_cls or JobHandle
    return handle_cls(_ChildProcess(popen, f"barl-{kind}"), _Updates(popen.stdout),
                      _CancelSignal(popen.stdin), kind, grace_s, **extra)


