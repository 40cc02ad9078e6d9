"""Poll a child-process job from the Qt event loop, and draw its loss curve.

The heavy work (torch) runs in a child process (:mod:`barl_core.runtime.jobs`); the GUI
only drains its progress queue from a QTimer, so the viewer stays responsive and
the GPU memory goes away with the child.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QObject, QPointF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["JobRunner", "LossPlot", "format_eta", "FINAL_KINDS"]

FINAL_KINDS = ("done", "error", "cancelled")


class JobRunner(QObject):
    """Owns one running :class:`barl_core.runtime.process.JobHandle` and polls it.

    Signals
    -------
    update(ProgressUpdate)
        Every non-final update, in order.
    finished(ProgressUpdate or None)
        Once, with the final update (``done``/``error``/``cancelled``), or None when
        the child vanished without saying why (killed, crashed interpreter).
    """

    update = Signal(object)
    finished = Signal(object)

    def __init__(self, interval_ms: int = 200, parent: QObject | None = None):
        super().__init__(parent)
        self._handle = None
        self.kind = ""
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._poll)

    def start(self, handle, kind: str) -> None:
        """Poll ``handle`` from now on; ``kind`` names the job in messages."""
        self._handle, self.kind = handle, kind
        self._timer.start()

    def is_running(self) -> bool:
        """Return True while a job is polled (until its final update)."""
        return self._handle is not None

    @property
    def handle(self):
        """The running job's handle (None when idle)."""
        return self._handle

    def cancel(self) -> None:
        """Ask the child to stop; its final ``cancelled`` update ends the run."""
        if self._handle is not None:
            self._handle.cancel()

    def _poll(self) -> None:
        handle = self._handle
        if handle is None:
            return
        try:
            updates = handle.poll()
        except Exception as exc:  # a broken pipe must not take the GUI down
            updates = []
            self._finish(_Failure(f"lost contact with the {self.kind} job: {exc}"))
            return
        for upd in updates:
            if getattr(upd, "kind", None) in FINAL_KINDS:
                self._finish(upd)
                return
            self.update.emit(upd)
        if not handle.is_running():
            # drain what the child wrote just before it exited
            try:
                late = handle.poll()
            except Exception:
                late = []
            for upd in late:
                if getattr(upd, "kind", None) in FINAL_KINDS:
                    self._finish(upd)
                    return
                self.update.emit(upd)
            self._finish(None)

    def _finish(self, upd) -> None:
        self._timer.stop()
        self._handle = None
        self.finished.emit(upd)


class _Failure:
    """A final update made up by the GUI when the job cannot report one."""

    kind = "error"
    iteration = total = 0
    losses: dict = {}
    its_per_s = eta_s = None
    result_path = None

    def __init__(self, message: str):
        self.message = message


def format_eta(seconds: float | None) -> str:
    """Return ``seconds`` as a short "ETA ..." text ("ETA --" when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "ETA --"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"ETA {seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"ETA {seconds // 60} min {seconds % 60:02d} s"
    return f"ETA {seconds} s"


class LossPlot(QWidget):
    """A small live sparkline of the total loss (log-free, autoscaled)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.values: list[float] = []
        self.setMinimumHeight(60)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("training loss")

    def clear(self) -> None:
        """Forget the curves (a new run starts)."""
        self.values = []
        self.update()

    def add(self, value: float) -> None:
        """Append one loss value (non-finite values are skipped: they would flatten the plot)."""
        if value is not None and math.isfinite(value):
            self.values.append(float(value))
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Draw the curve, autoscaled, with the last value written in the corner."""
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 36))
        w, h = self.width(), self.height()
        p.setPen(QColor(150, 150, 160))
        if len(self.values) < 2:
            p.drawText(self.rect(), Qt.AlignCenter, "loss")
            p.end()
            return
        lo, hi = min(self.values), max(self.values)
        span = (hi - lo) or 1.0
        n = len(self.values)
        pts = [
            QPointF(4 + (w - 8) * i / (n - 1), h - 4 - (h - 16) * (v - lo) / span)
            for i, v in enumerate(self.values)
        ]
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(QColor(255, 170, 60), 1.5))
        p.drawPolyline(QPolygonF(pts))
        p.setPen(QColor(200, 200, 210))
        p.drawText(4, 12, f"loss {self.values[-1]:.3f}  (max {hi:.3f})")
        p.end()
