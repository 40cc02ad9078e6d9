"""Hold back what C libraries print to the stderr file descriptor during one call.

Why this exists: ITK's readers and writers report some failures only by printing to file
descriptor 2 (``** ERROR: NWAD: wrote only 0 of ... bytes``, ``MetaImage: ... file stream
is fail``) and then return normally. Printed straight through, those lines break the
promise of one clear line per error. :func:`held_native_stderr` redirects descriptor 2 to a
temporary file for the duration of the call; the caller gets the lines, folds them into its
own error when the call failed, and :meth:`HeldStderr.release` prints them unchanged when it
did not (a warning is never swallowed).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HeldStderr", "held_native_stderr"]

# Descriptor 2 is one per process: two threads redirecting it at once could leave it pointing
# at a closed temporary. One holder at a time; a nested hold (same thread) just passes through.
_guard = threading.RLock()
_depth = 0


class HeldStderr:
    """Lines a C library printed while held; :meth:`release` prints them after all."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def first(self) -> str:
        """Return the most telling line (one mentioning an error), or ''."""
        for line in self.lines:
            if "rror" in line or "fail" in line:
                return line.strip()[:200]
        return self.lines[0].strip()[:200] if self.lines else ""

    def release(self) -> None:
        """Print the held-back lines to stderr after all (when they explain a failure)."""
        for line in self.lines:
            print(line, file=sys.stderr)
        self.lines = []


@contextmanager
def held_native_stderr() -> Iterator[HeldStderr]:
    """Redirect file descriptor 2 to a temporary file while the body runs.

    Falls back to no redirection when descriptor 2 cannot be duplicated or no temporary
    file can be made (a full ``/tmp``): the call still runs, its messages print as usual.
    Threads take turns (a process has one descriptor 2); a nested hold passes through.
    """
    global _depth
    held = HeldStderr()
    with _guard:
        if _depth:
            yield held
            return
        _depth += 1
        try:
            with _redirected(held):
                yield held
        finally:
            _depth -= 1


@contextmanager
def _redirected(held: HeldStderr) -> Iterator[None]:
    try:
        sink = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    with sink:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            try:
                sink.seek(0)
                text = sink.read(1 << 16).decode("utf-8", errors="replace")
            except OSError:
                text = ""
            held.lines = [ln for ln in text.splitlines() if ln.strip()]
