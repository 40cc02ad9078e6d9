"""Review: predict, and the ranked list of slices and cases to annotate next."""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ReviewPanel", "case_place"]

_ROLE = Qt.UserRole


def case_place(place: int, ranked) -> str:
    """Return ``#place (score, slice N)``: a case's place in the ``focused`` case ranking.

    The case table's *next* column and the review status line both show it this way (one
    format, one ranking).
    """
    best = "" if ranked.best_slice is None else f", slice {ranked.best_slice}"
    return f"#{place} ({ranked.score:.3f}{best})"


class ReviewPanel(QGroupBox):
    """Predict buttons, prediction progress and the suggestion list.

    Signals
    -------
    predict_requested(bool)
        ``False``: the current case; ``True``: all cases.
    suggestion_activated(str, int)
        A case name and a slice index (``-1``: the case's most uncertain slice).
    """

    predict_requested = Signal(bool)
    suggestion_activated = Signal(str, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Review", parent)
        self.predict_btn = QPushButton("Predict current")
        self.predict_all_btn = QPushButton("Predict all")
        row = QHBoxLayout()
        row.addWidget(self.predict_btn)
        row.addWidget(self.predict_all_btn)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("no prediction yet")
        self.status.setWordWrap(True)
        self.suggestions = QListWidget()
        self.suggestions.setToolTip("where the two branches disagree most: annotate these next")
        self.suggestions.setMinimumHeight(110)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("Annotate next (click to go there):"))
        lay.addWidget(self.suggestions)
        self.predict_btn.clicked.connect(lambda: self.predict_requested.emit(False))
        self.predict_all_btn.clicked.connect(lambda: self.predict_requested.emit(True))
        self.suggestions.itemClicked.connect(self._clicked)
        self.suggestions.itemActivated.connect(self._clicked)

    def set_running(self, running: bool, has_model: bool) -> None:
        """Enable the predict buttons when no job runs and there is a model."""
        self.predict_btn.setEnabled(not running and has_model)
        self.predict_all_btn.setEnabled(not running and has_model)

    def set_suggestions(self, case: str | None, slices: list, cases: list) -> None:
        """Fill the list: the current case's slices first, then the other cases.

        ``cases`` are :class:`~barl_core.active.ranking.RankedCase` rows, best first (the
        session's ``focused`` case ranking): each shows its score and its best slice's
        reason, and a click opens it on that slice.
        """
        self.suggestions.clear()
        for s in slices:
            reason = getattr(s, "reason", "")
            text = f"{case}  slice {int(s.index)}   score {float(s.score):.4f}"
            item = QListWidgetItem(f"{text}\n    {reason}" if reason else text)
            item.setToolTip(reason)
            item.setData(_ROLE, (case, int(s.index)))
            self.suggestions.addItem(item)
        for rank, c in enumerate(cases, start=1):
            if c.name == case:
                continue
            best = getattr(c, "best_slice", None)
            reason = getattr(c, "reason", "")
            text = f"case {rank}: {c.name}   score {float(c.score):.4f}"
            if best is not None:
                text += f"   (slice {int(best)})"
            item = QListWidgetItem(f"{text}\n    {reason}" if reason else text)
            item.setToolTip(reason)
            item.setData(_ROLE, (c.name, -1 if best is None else int(best)))
            self.suggestions.addItem(item)

    def show_case_place(self, case: str, cases: list) -> None:
        """Show the open case's place in ``cases`` and why, on the status line.

        ``cases`` is the session's ``focused`` case ranking, best first: the same one as the
        case table and the list below.
        Not the cached mean disagreement of the case: that is a different quantity, and
        showing it here told a user one thing while the ranking said another (issue 12).
        """
        for place, c in enumerate(cases, start=1):
            if c.name == case:
                reason = getattr(c, "reason", "")
                self.status.setText(f"{case}: next {case_place(place, c)} of {len(cases)} cases"
                                    + (f": {reason}" if reason else ""))
                return
        self.status.setText(f"{case}: predicted (not in the ranking of what to annotate next)")

    def _clicked(self, item: QListWidgetItem) -> None:
        case, z = item.data(_ROLE)
        self.suggestion_activated.emit(case, int(z))
