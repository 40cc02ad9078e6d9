"""Export: label maps as NIfTI on the source grid, for the open case or all cases.

Why a panel: what to export (the final mask, the user's labels, the prediction) is the
user's choice and is kept between sessions; the writing itself is
:meth:`barl_core.workspace.session.Session.export`.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QWidget,
)

from . import _settings
from ._case_view import CaseView
from ._notify import guarded, notify
from ._state import BarlState

__all__ = ["ExportPanel", "EXPORTS"]

#: What the export writes: (key, shown text). "final" merges your labels, accepted
#: proposals (annotated slices) and the prediction for the rest.
EXPORTS = (
    ("final", "final mask (your labels + prediction)"),
    ("labels", "your labels only"),
    ("prediction", "prediction only"),
)


class ExportPanel(QGroupBox):
    """Choose what to export and for which cases, then a folder.

    Parameters
    ----------
    view : CaseView
        The open case (saved before exporting).
    state : BarlState
        The dock's shared state.
    """

    def __init__(self, view: CaseView, state: BarlState, parent: QWidget | None = None):
        super().__init__("Export (NIfTI, source geometry)", parent)
        self.view, self.state = view, state
        self.export_what = QComboBox()
        for key, text in EXPORTS:
            self.export_what.addItem(text, key)
        self.export_all = QCheckBox("all cases")
        self.export_btn = QPushButton("Export...")
        row = QHBoxLayout(self)
        for w in (self.export_what, self.export_all, self.export_btn):
            row.addWidget(w)
        self.export_btn.clicked.connect(lambda: self._choose_folder())
        state.events.case.connect(lambda case: self.export_btn.setEnabled(case is not None))
        self.export_btn.setEnabled(False)
        _settings.bind("export/what", self.export_what)
        _settings.bind("export/all_cases", self.export_all)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder")
        if folder:
            self.export(folder, self.export_what.currentData(), self.export_all.isChecked())

    @guarded
    def export(
        self, folder: str | Path, what: str = "final", all_cases: bool = False
    ) -> list[Path]:
        """Write label maps as NIfTI on the source grid: ``final``, ``labels`` or ``prediction``.

        See :meth:`barl_core.workspace.session.Session.export`: ``final`` (the default) is
        the user's labels over the prediction; no export holds the 255 marker.
        """
        session = self.state.require_session()
        self.view.save_now()
        case = self.state.case
        cases = session.cases if all_cases else ([case] if case else [])
        folder = Path(folder)
        written, skipped = session.export(folder, what, cases)
        for name in skipped:
            notify("warning", f"case {name!r} has no prediction: skipped")
        if written:
            notify("info", f"exported {len(written)} file(s) to {folder}")
        return written
