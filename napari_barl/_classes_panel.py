"""Classes: the list of label classes (rename, add, remove) and the one being painted.

Why here: the class names belong to the workspace (``state.classes``), but which class the
brush paints is a property of the open case's labels layer, and it depends on the paint
mode (background is "erase" in full-slice mode, an explicit label when scribbling).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from barl_core.errors import BarlError

from ._annotation import SCRIBBLE_BACKGROUND
from ._case_view import CaseView
from ._notify import guarded
from ._state import BarlState

__all__ = ["ClassesPanel"]


class ClassesPanel(QGroupBox):
    """Class names with their label colours; selecting one makes the brush paint it.

    Parameters
    ----------
    view : CaseView
        The open case (its labels layer gets the selected label).
    state : BarlState
        The dock's shared state (``classes`` is set here).
    """

    def __init__(self, view: CaseView, state: BarlState, parent: QWidget | None = None):
        super().__init__("Classes (double-click to rename; select to paint)", parent)
        self.view, self.state = view, state
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(80)
        self.add_class_btn = QPushButton("Add class")
        self.remove_class_btn = QPushButton("Remove last")
        row = QHBoxLayout()
        row.addWidget(self.add_class_btn)
        row.addWidget(self.remove_class_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.class_list)
        lay.addLayout(row)
        self.class_list.itemChanged.connect(self._renamed)
        self.class_list.currentRowChanged.connect(self._selected)
        self.add_class_btn.clicked.connect(lambda: self.add_class())
        self.remove_class_btn.clicked.connect(lambda: self.remove_last_class())
        for name in ("session", "classes", "case"):
            getattr(state.events, name).connect(lambda *_: self.refresh())
        state.events.paint_mode.connect(lambda _m: self._selected(self.class_list.currentRow()))
        for name in ("session", "read_only"):
            getattr(state.events, name).connect(lambda *_: self._update_enabled())
        self.refresh()
        self._update_enabled()

    def _update_enabled(self) -> None:
        for b in (self.add_class_btn, self.remove_class_btn):
            b.setEnabled(self.state.can_write)

    def refresh(self) -> None:
        """List the class names, each with its colour on the open case's labels layer."""
        names = list(self.state.classes) or ["background", "foreground"]
        row = self.class_list.currentRow()
        writable = self.state.can_write
        self.class_list.blockSignals(True)
        self.class_list.clear()
        layer = self.view.labels_layer
        for i, name in enumerate(names):
            item = QListWidgetItem(f"{name}")
            editable = i > 0 and writable
            flags = (
                item.flags() | Qt.ItemIsEditable if editable else item.flags() & ~Qt.ItemIsEditable
            )
            item.setFlags(flags)
            rgba = layer.get_color(i) if layer is not None and i > 0 else None
            if rgba is not None:
                pix = QPixmap(12, 12)
                pix.fill(QColor(*(int(255 * c) for c in np.asarray(rgba)[:3])))
                item.setIcon(QIcon(pix))
            self.class_list.addItem(item)
        self.class_list.setCurrentRow(row if 0 < row < len(names) else 1)
        self.class_list.blockSignals(False)
        self._selected(self.class_list.currentRow())

    @guarded
    def _renamed(self, _item) -> None:
        names = [self.class_list.item(i).text().strip() for i in range(self.class_list.count())]
        ws = self.state.require_session().workspace
        ws.set_class_names(names)
        self.state.classes = tuple(ws.class_names)

    def _selected(self, row: int) -> None:
        layer = self.view.labels_layer
        if layer is not None and row >= 0:
            # background is "erase" in full-slice mode, an explicit label when scribbling
            scribble_bg = row == 0 and self.state.paint_mode == "scribble"
            layer.selected_label = SCRIBBLE_BACKGROUND if scribble_bg else row

    @guarded
    def add_class(self, name: str | None = None) -> None:
        """Append a class (``class_K`` unless named)."""
        ws = self.state.require_session().workspace
        names = ws.class_names
        if len(names) >= SCRIBBLE_BACKGROUND:
            raise BarlError(f"at most {SCRIBBLE_BACKGROUND} classes")
        ws.set_class_names(names + [name or f"class_{len(names)}"])
        self.state.classes = tuple(ws.class_names)

    @guarded
    def remove_last_class(self) -> None:
        """Remove the last class (the workspace refuses while it is painted)."""
        ws = self.state.require_session().workspace
        self.view.save_now()
        ws.set_class_names(ws.class_names[:-1])
        self.state.classes = tuple(ws.class_names)
