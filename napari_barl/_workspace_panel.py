"""Workspace: open or create a folder, add cases, list them, say when it is read-only.

Why a panel of its own: opening a workspace decides what every other panel may do (a
folder held by another process opens read-only, and the dock must say so before anyone
paints). The panel sets ``state.session``, ``state.read_only``, ``state.cases`` and
``state.classes``; it opens cases through the :class:`~napari_barl._case_view.CaseView`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from barl_core.errors import LockedError
from barl_core.workspace.layout import Workspace
from barl_core.workspace.session import Session

from ._case_view import CaseView
from ._layers import CASE_KEY, GEOMETRY_KEY, volume_from_layer_attributes
from ._notify import guarded, notify
from ._review_panel import case_place
from ._state import BarlState

__all__ = ["WorkspacePanel", "READ_ONLY_TEXT"]

#: The banner over the dock when another process holds the workspace.
READ_ONLY_TEXT = (
    "READ-ONLY: another napari-barl (or barl command) has this workspace open. You can "
    "look at cases, predictions and versions; painting, training, predicting and accepting "
    "are off until it is closed and you open the folder again."
)


class WorkspacePanel(QGroupBox):
    """The workspace folder, its cases (click one to open it) and the read-only banner.

    Parameters
    ----------
    view : CaseView
        Opens and closes cases in the viewer.
    state : BarlState
        The dock's shared state.
    """

    def __init__(self, view: CaseView, state: BarlState, parent: QWidget | None = None):
        super().__init__("Workspace", parent)
        self.view, self.state = view, state
        self.ws_label = QLabel("no workspace: open or create a folder")
        self.ws_label.setWordWrap(True)
        self.read_only_banner = QLabel(READ_ONLY_TEXT)
        self.read_only_banner.setWordWrap(True)
        self.read_only_banner.setStyleSheet(
            "background: #8a1c1c; color: white; font-weight: bold; padding: 4px;"
        )
        self.read_only_banner.setVisible(False)
        self.open_ws_btn = QPushButton("Open / create folder...")
        self.add_layers_btn = QPushButton("Add open images")
        self.add_layers_btn.setToolTip("add the image layers open in the viewer as cases")
        self.add_files_btn = QPushButton("Add files...")
        row = QGridLayout()
        row.addWidget(self.open_ws_btn, 0, 0, 1, 2)
        row.addWidget(self.add_layers_btn, 1, 0)
        row.addWidget(self.add_files_btn, 1, 1)
        self.case_table = QTableWidget(0, 4)
        self.case_table.setHorizontalHeaderLabels(["case", "state", "next", "why"])
        self.case_table.setToolTip(
            "next: the case's place in the ranking of what to annotate next (the mean score of "
            "its best suggested slices) and its best slice; why: that slice's reason"
        )
        self.case_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.case_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.case_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.case_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.case_table.horizontalHeader().setStretchLastSection(True)
        self.case_table.verticalHeader().setVisible(False)
        self.case_table.setMinimumHeight(100)
        lay = QVBoxLayout(self)
        lay.addWidget(self.read_only_banner)
        lay.addWidget(self.ws_label)
        lay.addLayout(row)
        lay.addWidget(self.case_table)

        self.open_ws_btn.clicked.connect(lambda: self._choose_workspace())
        self.add_layers_btn.clicked.connect(lambda: self.add_viewer_images())
        self.add_files_btn.clicked.connect(lambda: self._choose_files())
        self.case_table.cellClicked.connect(self._case_clicked)
        self._ranked: dict = {}  # case -> (place, RankedCase), from the last ranking
        for name in ("session", "cases", "case", "predictions"):  # not per stroke: ranking loads cases
            getattr(state.events, name).connect(lambda *_: self._rerank())
        for name in ("session", "cases", "case", "labels_saved", "predictions"):
            getattr(state.events, name).connect(lambda *_: self.refresh_cases())
        for name in ("session", "read_only"):
            getattr(state.events, name).connect(lambda *_: self._update_enabled())
        self._update_enabled()

    def _update_enabled(self) -> None:
        for b in (self.add_layers_btn, self.add_files_btn):
            b.setEnabled(self.state.can_write)
        self.read_only_banner.setVisible(self.state.read_only)

    # ------------------------------------------------------------------ open
    def _choose_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Workspace folder (new or existing)")
        if folder:
            self.open_workspace(folder)

    @guarded
    def open_workspace(self, folder: str | Path, class_names: list[str] | None = None) -> Workspace:
        """Open the workspace in ``folder``, creating it if needed.

        A workspace another process holds opens read-only (the banner says so), rather
        than not at all: the user can still look while the other one works.
        """
        self.view.close()
        folder = Path(folder)
        try:
            session, read_only = Session.open(folder, class_names), False
        except LockedError as exc:
            session, read_only = Session.open(folder, read_only=True), True
            notify("warning", f"opened read-only: {exc}")
        old = self.state.session
        if old is not None and old is not session:
            old.workspace.close()  # the lock goes with the folder we leave
        self.state.read_only = read_only
        self.state.session = session
        self.state.model = session.current_version_id()
        self.state.classes = tuple(session.class_names)
        self.state.cases = tuple(session.cases)
        self.ws_label.setText(f"workspace: {folder}" + (" (read-only)" if read_only else ""))
        self.read_only_banner.setToolTip(str(folder))
        if session.cases:
            self.view.open(session.cases[0])
        return session.workspace

    # ------------------------------------------------------------------ add cases
    @guarded
    def add_viewer_images(self) -> list[str]:
        """Add every Image layer of the viewer (not yet a case) to the workspace."""
        import napari

        session = self.state.require_session()
        added = []
        for layer in list(self.view.viewer.layers):
            if not isinstance(layer, napari.layers.Image) or layer.metadata.get(CASE_KEY):
                continue
            if layer.rgb or layer.ndim != 3 or layer.multiscale:
                notify("warning", f"layer {layer.name!r} skipped: only single-channel 3D volumes")
                continue
            vol = volume_from_layer_attributes(
                np.asarray(layer.data),
                {"metadata": layer.metadata, "scale": layer.scale, "translate": layer.translate},
            )
            name = session.add_volume(vol, layer.name)
            layer.metadata[CASE_KEY] = name
            layer.metadata.setdefault(GEOMETRY_KEY, vol.geometry())
            added.append(name)
        self._adopt_class_names()
        self.state.cases = tuple(session.cases)
        if added and self.state.case is None:
            self.view.open(added[0])
        if not added:
            notify("info", "no new 3D image layer to add")
        return added

    def _adopt_class_names(self) -> None:
        """Take class names offered by a layer (the phantom's) while nothing is labelled."""
        session = self.state.session
        for layer in self.view.viewer.layers:
            if session.adopt_class_names(layer.metadata.get("barl_class_names")):
                self.state.classes = tuple(session.class_names)
                return

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add volumes", "", "Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd)"
        )
        for f in files:
            self.add_file(f)

    @guarded
    def add_file(self, path: str | Path) -> str:
        """Add a volume file (or DICOM folder) as a case; open it if none is open."""
        session = self.state.require_session()
        name = session.add_file(path)
        self.state.cases = tuple(session.cases)
        if self.state.case is None:
            self.view.open(name)
        return name

    # ------------------------------------------------------------------ the table
    def _rerank(self) -> None:
        """Take the case order from the session's ``focused`` ranking (cached there)."""
        session = self.state.session
        cases = session.case_ranking().cases if session is not None else []
        self._ranked = {c.name: (i, c) for i, c in enumerate(cases, start=1)}

    def refresh_cases(self) -> None:
        """List the cases: name (the open one bold), state, place in the ranking and why."""
        ws = self.state.workspace
        self.case_table.setRowCount(0)
        if ws is None:
            return
        for name in ws.cases:
            r = self.case_table.rowCount()
            self.case_table.insertRow(r)
            place, ranked = self._ranked.get(name, (None, None))
            nxt = why = ""
            if ranked is not None:
                nxt, why = case_place(place, ranked), ranked.reason
            cells = [name, ws.case_state(name), nxt, why]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if why:
                    item.setToolTip(why)
                if name == self.state.case:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.case_table.setItem(r, c, item)
        self.case_table.resizeColumnsToContents()

    def _case_clicked(self, row: int, _col: int) -> None:
        item = self.case_table.item(row, 0)
        if item is not None:
            self.view.open(item.text())
