"""Uncertainty minimap: one bar per slice of the current case.

Bar height is the slice's mean branch disagreement; a strip under the bars says
how each slice stands (green: annotated, blue: accepted from the model's proposal,
grey: untouched). Clicking (or dragging over) the map moves the viewer to that
slice. A glance shows where the model is unsure and which of those places a human
has already looked at.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["UncertaintyMinimap"]

_ANNOTATED = QColor(80, 200, 120)
_ACCEPTED = QColor(90, 150, 255)
_UNTOUCHED = QColor(90, 90, 100)
_BAR = QColor(255, 140, 40)
_CURRENT = QColor(255, 255, 255)


class UncertaintyMinimap(QWidget):
    """Per-slice disagreement bars with annotation markers; emits ``slice_clicked(int)``."""

    slice_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.n_slices = 0
        self.profile: np.ndarray | None = None
        self.annotated: set[int] = set()
        self.accepted: set[int] = set()
        self.current = -1
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip(
            "per-slice disagreement (bars); green: annotated, blue: accepted "
            "proposal, grey: untouched. Click to go to a slice."
        )

    def set_case(self, n_slices: int, profile: np.ndarray | None, annotated, accepted=()) -> None:
        """Show a case: its slice count, per-slice profile (None: not predicted) and marks."""
        self.n_slices = int(n_slices)
        self.profile = None if profile is None else np.asarray(profile, float)
        self.annotated, self.accepted = set(annotated), set(accepted)
        self.update()

    def set_marks(self, annotated, accepted=()) -> None:
        """Redraw the annotated (green) and accepted (blue) slice marks after a save."""
        self.annotated, self.accepted = set(annotated), set(accepted)
        self.update()

    def set_current(self, z: int) -> None:
        """Outline slice ``z``: the one the viewer shows."""
        if z != self.current:
            self.current = int(z)
            self.update()

    def slice_at(self, x: float) -> int:
        """Return the slice under widget x-coordinate ``x`` (clipped; -1 without a case)."""
        if self.n_slices <= 0 or self.width() <= 0:
            return -1
        return int(np.clip(x * self.n_slices / self.width(), 0, self.n_slices - 1))

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Go to the clicked slice."""
        z = self.slice_at(event.pos().x())
        if z >= 0:
            self.slice_clicked.emit(z)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Follow a drag with the left button: scrub through slices."""
        if event.buttons() & Qt.LeftButton:
            self.mousePressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Draw the bars, the status strip and the current slice."""
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor(28, 28, 34))
        n = self.n_slices
        if n <= 0:
            p.setPen(QColor(150, 150, 160))
            p.drawText(self.rect(), Qt.AlignCenter, "uncertainty minimap (open a case)")
            p.end()
            return
        bw = w / n
        strip = 8
        top = h - strip - 2
        prof = self.profile
        if prof is not None and prof.size == n and np.isfinite(prof).all():
            hi = float(prof.max()) or 1.0
            for z, v in enumerate(prof):
                bh = (top - 2) * float(v) / hi
                p.fillRect(QRectF(z * bw, top - bh, max(bw - 0.5, 1.0), bh), _BAR)
        else:
            p.setPen(QColor(150, 150, 160))
            p.drawText(QRectF(0, 0, w, top), Qt.AlignCenter, "no prediction yet")
        for z in range(n):
            color = (
                _ACCEPTED
                if z in self.accepted
                else _ANNOTATED
                if z in self.annotated
                else _UNTOUCHED
            )
            p.fillRect(QRectF(z * bw, h - strip, max(bw - 0.5, 1.0), strip), color)
        if 0 <= self.current < n:
            p.setPen(QPen(_CURRENT, 1.5))
            x = (self.current + 0.5) * bw
            p.drawLine(int(x), 0, int(x), h)
        p.end()
