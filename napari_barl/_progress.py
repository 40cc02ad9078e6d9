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

__all__ = ["JobRunner", "LossPlot", "format_eta", "format_duration", "FINAL_KINDS"]

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


def format_duration(seconds: float | None) -> str:
    """Return ``seconds`` as "1 h 02 min", "3 min 05 s" or "42 s" ("--" when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def format_eta(seconds: float | None) -> str:
    """Return ``seconds`` as a short "ETA ..." text ("ETA --" when unknown)."""
    return f"ETA {format_duration(seconds)}"


class LossPlot(QWidget):
    """Live curves of a run on one iteration axis: the total loss and the validation Dice.

    The loss is autoscaled (orange); the validation Dice (green, 0 to 1) is what the trainer
    keeps the best weights by and stops on when it plateaus, so seeing both tells whether a
    falling loss still buys a better model.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.values: list[float] = []
        self.iterations: list[int] = []
        self.val_dice: list[tuple[int, float]] = []
        self.setMinimumHeight(60)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("training loss (orange) and validation Dice (green, 0 to 1)")

    def clear(self) -> None:
        """Forget the curves (a new run starts)."""
        self.values, self.iterations, self.val_dice = [], [], []
        self.update()

    def add(self, value: float, iteration: int | None = None) -> None:
        """Append one loss value (non-finite values are skipped: they would flatten the plot)."""
        if value is not None and math.isfinite(value):
            self.values.append(float(value))
            self.iterations.append(int(iteration) if iteration else len(self.values))
            self.update()

    def add_validation(self, iteration: int, dice: float) -> None:
        """Append the validation Dice scored at ``iteration``."""
        if dice is not None and math.isfinite(dice):
            self.val_dice.append((int(iteration), float(dice)))
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Draw both curves, the loss autoscaled, with the last values written on top."""
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 36))
        w, h = self.width(), self.height()
        p.setPen(QColor(150, 150, 160))
        if len(self.values) < 2 and not self.val_dice:
            p.drawText(self.rect(), Qt.AlignCenter, "loss / validation Dice")
            p.end()
            return
        last = max(self.iterations[-1:] + [it for it, _ in self.val_dice] + [2])
        first = min(self.iterations[:1] + [it for it, _ in self.val_dice[:1]] + [last - 1])
        span_x = max(last - first, 1)

        def x_of(it: int) -> float:
            return 4 + (w - 8) * (it - first) / span_x

        p.setRenderHint(QPainter.Antialiasing)
        texts = []
        if len(self.values) >= 2:
            lo, hi = min(self.values), max(self.values)
            span = (hi - lo) or 1.0
            pts = [
                QPointF(x_of(it), h - 4 - (h - 16) * (v - lo) / span)
                for it, v in zip(self.iterations, self.values, strict=True)
            ]
            p.setPen(QPen(QColor(255, 170, 60), 1.5))
            p.drawPolyline(QPolygonF(pts))
            texts.append(f"loss {self.values[-1]:.3f}  (max {hi:.3f})")
        if self.val_dice:
            pts = [QPointF(x_of(it), h - 4 - (h - 16) * d) for it, d in self.val_dice]
            p.setPen(QPen(QColor(90, 210, 120), 1.5))
            if len(pts) > 1:
                p.drawPolyline(QPolygonF(pts))
            for pt in pts:
                p.drawEllipse(pt, 2.0, 2.0)
            texts.append(f"val Dice {self.val_dice[-1][1]:.3f}")
        p.setPen(QColor(200, 200, 210))
        p.drawText(4, 12, "   ".join(texts))
        p.end()
