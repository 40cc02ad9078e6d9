"""The dock's panels in a vertical scroll area never narrower than its content.

Why: the dock scrolls vertically only (a horizontal scroll bar in a side dock hides
controls at the edge), so it must be at least as wide as its content needs, and that need
changes with case names and status texts; the area follows its content's layout requests.
"""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

__all__ = ["FittingScrollArea"]

MIN_WIDTH = 400


class FittingScrollArea(QScrollArea):
    """Stack ``panels`` top to bottom and scroll them; the width follows what they need.

    Parameters
    ----------
    panels : sequence of QWidget
        The widgets to stack, in order.
    """

    def __init__(self, panels: Sequence[QWidget], parent: QWidget | None = None):
        super().__init__(parent)
        content = QWidget()
        lay = QVBoxLayout(content)
        for panel in panels:
            lay.addWidget(panel)
        lay.addStretch(1)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setWidget(content)
        content.installEventFilter(self)
        self.fit_width()

    def fit_width(self) -> None:
        """Make the area at least as wide as the content plus the vertical scroll bar."""
        need = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(max(MIN_WIDTH, need + 4))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        """Refit when the content's layout asks for it; never consume the event."""
        if event.type() == QEvent.LayoutRequest and obj is self.widget():
            self.fit_width()
        return False
