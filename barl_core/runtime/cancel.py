"""Cooperative cancellation: one token the GUI, the CLI and a parent process can set.

Why cooperative: a training loop stopped from outside at an arbitrary point could leave a
half-written checkpoint or a CUDA context in a bad state; checked at iteration (or
window) boundaries, a cancel always ends at a clean point, and training writes its last
checkpoint on the way out.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["CancelToken", "is_cancelled"]


class CancelToken:
    """Cooperative cancellation, checked once per iteration.

    Parameters
    ----------
    event : threading.Event or multiprocessing.Event, optional
        Shared flag (a GUI thread or a parent process sets it); a fresh
        ``threading.Event`` if omitted.
    flag_file : path, optional
        Cancelled as soon as this file exists (works across unrelated processes).

    Examples
    --------
    >>> token = CancelToken()
    >>> token.cancel(); token.cancelled
    True
    """

    def __init__(self, event: Any | None = None, flag_file: str | os.PathLike | None = None):
        self.event = event if event is not None else threading.Event()
        self.flag_file = Path(flag_file) if flag_file is not None else None

    def cancel(self) -> None:
        """Ask the job to stop at the next iteration boundary."""
        self.event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called, the event was set or the flag file exists."""
        return bool(self.event.is_set()) or (self.flag_file is not None and self.flag_file.exists())


def is_cancelled(cancel: Any) -> bool:
    """Return True once ``cancel`` (a CancelToken, an Event, a callable or None) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "cancelled"):
        return bool(cancel.cancelled)
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    if callable(cancel):
        return bool(cancel())
    return False
