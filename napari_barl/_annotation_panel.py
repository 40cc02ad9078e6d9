"""Annotation: the paint mode, the minimap and the open case's annotated slices.

Why these together: they answer "what counts as annotated, and where": the paint mode
decides what unpainted voxels mean, the list and the minimap show which slices count
(and where the model is unsure), and the buttons change that for the current slice.
The panel follows ``state.case``, ``state.labels_saved`` and ``state.predictions``.
"""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from . import _settings
from ._case_view import CaseView
from ._minimap import UncertaintyMinimap
from ._notify import guarded
from ._state import BarlState

__all__ = ["AnnotationPanel", "MODE_TEXT"]

MODE_TEXT = {
    "slice": "Full slice: a painted slice counts whole, unpainted voxels are background",
    "scribble": "Scribble: only painted voxels count, the rest stays unknown",
}


class AnnotationPanel(QGroupBox):
    """Paint mode, minimap, annotated slices, and mark / un-mark / accept buttons.

    Parameters
    ----------
    view : CaseView
        The open case (slice under the cursor, the labels binding).
    state : BarlState
        The dock's shared state (``paint_mode`` is set here).

    Signals
    -------
    accept_requested()
        The user asked to accept the model's proposal on the current slice (the
        proposals controller decides, asking first when little is confident).
    """

    accept_requested = Signal()

    def __init__(self, view: CaseView, state: BarlState, parent: QWidget | None = None):
        super().__init__("Annotation", parent)
        self.view, self.state = view, state
        self.mode_slice = QRadioButton("Full slice")
        self.mode_slice.setToolTip(MODE_TEXT["slice"])
        self.mode_scribble = QRadioButton("Scribble")
        self.mode_scribble.setToolTip(MODE_TEXT["scribble"])
        self.mode_slice.setChecked(True)
        self._mode_group = QButtonGroup(self)
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Paint mode:"))
        for b in (self.mode_slice, self.mode_scribble):
            self._mode_group.addButton(b)
            mode_row.addWidget(b)
        mode_row.addStretch(1)
        self.mode_label = QLabel(MODE_TEXT["slice"])
        self.mode_label.setWordWrap(True)
        self.minimap = UncertaintyMinimap()
        self.annotated_label = QLabel("annotated slices: none")
        self.annotated_label.setWordWrap(True)
        self.annotated_list = QListWidget()
        self.annotated_list.setFlow(QListWidget.LeftToRight)
        self.annotated_list.setWrapping(True)
        self.annotated_list.setMaximumHeight(34)
        self.mark_btn = QPushButton("Mark slice annotated")
        self.mark_btn.setToolTip(
            "count the current slice as annotated; unpainted voxels are background"
        )
        self.unmark_btn = QPushButton("Un-mark slice")
        self.accept_btn = QPushButton("Accept proposal on slice (Shift-A)")
        row = QHBoxLayout()
        row.addWidget(self.mark_btn)
        row.addWidget(self.unmark_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(mode_row)
        lay.addWidget(self.mode_label)
        lay.addWidget(self.minimap)
        lay.addWidget(self.annotated_label)
        lay.addWidget(self.annotated_list)
        lay.addLayout(row)
        lay.addWidget(self.accept_btn)

        self.mode_scribble.toggled.connect(
            lambda on: setattr(self.state, "paint_mode", "scribble" if on else "slice")
        )
        self.annotated_list.itemClicked.connect(lambda it: self._go(int(it.text())))
        self.minimap.slice_clicked.connect(self._go)
        self.mark_btn.clicked.connect(lambda: self.mark_current_slice(True))
        self.unmark_btn.clicked.connect(lambda: self.mark_current_slice(False))
        self.accept_btn.clicked.connect(lambda: self.accept_requested.emit())
        view.viewer.dims.events.current_step.connect(self._dims_changed)
        state.events.paint_mode.connect(self._mode_changed)
        for name in ("case", "predictions"):
            getattr(state.events, name).connect(lambda *_: self._show_case())
        state.events.labels_saved.connect(lambda _n: self._show_annotated())
        state.events.all.connect(lambda *_: self._update_enabled())
        _settings.bind("annotation/scribble", self.mode_scribble)
        self.sync_mode_from_buttons()
        self._update_enabled()

    def sync_mode_from_buttons(self) -> None:
        """Make ``state.paint_mode`` what the buttons say (after settings restored them)."""
        self.state.paint_mode = "scribble" if self.mode_scribble.isChecked() else "slice"
        self._mode_changed(self.state.paint_mode)

    def _mode_changed(self, mode: str) -> None:
        (self.mode_scribble if mode == "scribble" else self.mode_slice).setChecked(True)
        self.mode_label.setText(MODE_TEXT[mode])

    def _update_enabled(self) -> None:
        ws, case = self.state.workspace, self.state.case
        can = self.state.can_write and case is not None
        for b in (self.mark_btn, self.unmark_btn):
            b.setEnabled(can)
        self.accept_btn.setEnabled(can and ws.record(case).predicted)

    def _go(self, z: int) -> None:
        if self.state.case is not None:
            self.view.go_to(self.state.case, int(z))

    def _dims_changed(self, _event=None) -> None:
        if self.view.labels_layer is not None:
            try:
                self.minimap.set_current(self.view.current_slice())
            except Exception:  # noqa: BLE001 (a repaint hint, never worth an error)
                pass

    # ------------------------------------------------------------------ followers
    def _show_case(self) -> None:
        """Draw the open case on the minimap: the ranked quantity once it is predicted."""
        session, case = self.state.session, self.state.case
        if session is None or case is None:
            self.minimap.set_case(0, None, ())
            return
        ws = session.workspace
        profile, label = session.slice_profile(case)
        self.minimap.set_case(
            ws.reference(case).shape[0],
            profile,
            ws.annotated_slices(case),
            ws.accepted_slices(case),
        )
        if profile is not None:
            self.minimap.setToolTip(f"Per slice: {label}; the suggestions rank the same.")
        self._show_annotated()

    def _show_annotated(self) -> None:
        """List the annotated slices and mark them on the minimap (after each save)."""
        ws, case = self.state.workspace, self.state.case
        slices = ws.annotated_slices(case) if ws is not None and case is not None else []
        self.annotated_list.clear()
        for z in slices:
            self.annotated_list.addItem(str(z))
        self.annotated_label.setText(
            f"annotated slices ({len(slices)}): {', '.join(map(str, slices)) or 'none'}"
        )
        if slices or case is not None:
            self.minimap.set_marks(slices, ws.accepted_slices(case) if case is not None else ())
        self._dims_changed()

    # ------------------------------------------------------------------ buttons
    @guarded
    def mark_current_slice(self, annotated: bool = True) -> None:
        """Count the current slice as annotated (unpainted = background), or clear it."""
        self.state.require_case()
        if self.view.sync is None:
            from barl_core.errors import InputFileError

            raise InputFileError("open a case first")
        self.view.sync.mark(self.view.current_slice(), annotated)
