"""Jobs end with the window: a filter that reports when napari's main window has closed.

Why: a dock widget gets no close event of its own when napari's window closes, and the
training child it started must not run on without a window to show it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMainWindow

__all__ = ["WindowCloseFilter"]


class WindowCloseFilter(QObject):
    """Call ``on_close`` once the watched main window has closed (not when minimised).

    Parameters
    ----------
    on_close : callable
        Called without arguments after the window closed.
    """

    def __init__(self, on_close: Callable[[], None], parent: QObject | None = None):
        super().__init__(parent)
        self._on_close = on_close
        self._window = None
        self._closing = False

    def watch(self, window: QMainWindow) -> None:
        """Watch ``window`` (held weakly: holding it would keep the whole viewer alive)."""
        old = self._window() if self._window is not None else None
        if old is window:
            return
        if old is not None:
            old.removeEventFilter(self)
        self._window = weakref.ref(window)
        window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        """Call ``on_close`` on the hide that follows a close; never consume the event."""
        kind = event.type()
        if kind == QEvent.Close:
            self._closing = True  # napari may still ask "really close?"
        elif kind == QEvent.Hide and self._closing:
            self._closing = False
            self._on_close()
        elif kind in (QEvent.Show, QEvent.WindowActivate):
            self._closing = False  # the close was cancelled
        return False
