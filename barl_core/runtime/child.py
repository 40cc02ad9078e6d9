"""The child side of :mod:`barl_core.runtime.process`: ``python -m barl_core.runtime.child``.

It reads the job (``{"target": "module:function", "args": (...), "grace_s": s}``) from
stdin, imports the target by name and runs ``target(updates, event, *args)``. Its original
stdout carries the updates; ``print`` output goes to stderr so it cannot corrupt them. A
watcher thread keeps reading stdin: :data:`~barl_core.runtime.process.CANCEL` sets the
event, end-of-file (the parent died or closed the pipe) sets it too and, if the work has not
stopped ``grace_s`` seconds later, ends the process.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any, BinaryIO

from barl_core.runtime.protocol import CANCEL, read_message, write_message

__all__ = ["main"]

#: Exit code of a child that ended because its parent was gone.
ORPHAN_EXIT = 3


class _RawReader:
    """Unbuffered reads of a file descriptor.

    A daemon thread must not hold a buffered reader's lock when the interpreter shuts down.
    """

    def __init__(self, fd: int):
        self.fd = fd

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)


class _UpdateChannel:
    """What the job's target reports on: ``put`` writes one update to the parent."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._lock = threading.Lock()

    def put(self, obj: Any) -> None:
        with self._lock:
            try:
                write_message(self._stream, obj)
            except (BrokenPipeError, OSError, ValueError):
                pass  # the parent is gone: nobody is listening any more

    def close(self) -> None:
        with self._lock:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                pass

    def join_thread(self) -> None:
        """Nothing to wait for (writes are synchronous); kept for the queue-like interface."""


def _watch(stdin: _RawReader, event: threading.Event, grace_s: float) -> None:
    while True:
        try:
            byte = stdin.read(1)
        except (OSError, ValueError):
            byte = b""
        if byte == CANCEL:
            event.set()
            continue
        if byte:
            continue
        # end of file: the parent is gone (or gave up on us): stop, then make sure we end
        event.set()
        timer = threading.Timer(grace_s, os._exit, args=(ORPHAN_EXIT,))
        timer.daemon = True
        timer.start()
        return


def main() -> int:
    """Run one job from stdin; return the exit code."""
    stdin = _RawReader(sys.stdin.fileno())
    updates_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # print() must not corrupt the updates
    updates = _UpdateChannel(os.fdopen(updates_fd, "wb"))
    try:
        job = read_message(stdin)
    except EOFError:
        return ORPHAN_EXIT
    module, _, name = job["target"].partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    event = threading.Event()
    threading.Thread(
        target=_watch, args=(stdin, event, float(job.get("grace_s", 30.0))), daemon=True
    ).start()
    target(updates, event, *job["args"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
