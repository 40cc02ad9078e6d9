"""The BARL dock widget: workspace, annotation, training, review and export.

The widget is glue: the use-cases live in :class:`barl_core.workspace.session.Session`
(over a :class:`~barl_core.workspace.layout.Workspace`), heavy work runs in child
processes (:mod:`barl_core.runtime.jobs`) polled by a QTimer, and
every user-caused failure (:class:`~barl_core.errors.BarlError`) becomes a napari
notification instead of a traceback.
"""

from __future__ import annotations

import logging
import traceback
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from barl_core.active.proposals import NEEDS_HUMAN
from barl_core.errors import BarlError, InputFileError
from barl_core.workspace.layout import Workspace
from barl_core.workspace.session import Session, SessionJob

from . import _settings
from ._annotation import SCRIBBLE_BACKGROUND, LabelsSync, layer_data_from_labels
from ._layers import (
    GEOMETRY_KEY,
    class_colormap,
    geometry_kwargs,
    same_layer,
    volume_from_layer_attributes,
)
from ._minimap import UncertaintyMinimap
from ._notify import guarded
from ._notify import notify as _notify
from ._progress import JobRunner
from ._quality import QualityController
from ._review_panel import ReviewPanel
from ._state import BarlState
from ._tools_panel import ToolsPanel
from ._training_panel import TrainingPanel

if TYPE_CHECKING:
    import napari

__all__ = ["BarlWidget"]

log = logging.getLogger(__name__)
CASE_KEY = "barl_case"
PREDICTION_LAYER = "prediction"
DISAGREEMENT_LAYER = "disagreement"
#: What the export writes: (key, shown text). "final" merges your labels, accepted
#: proposals (annotated slices) and the prediction for the rest.
EXPORTS = (
    ("final", "final mask (your labels + prediction)"),
    ("labels", "your labels only"),
    ("prediction", "prediction only"),
)
CANVAS_MODE_TEXT = {
    "slice": "BARL: full-slice mode (unpainted = background)",
    "scribble": "BARL: scribble mode (unpainted = unknown)",
}
MODE_TEXT = {
    "slice": "Full slice: a painted slice counts whole, unpainted voxels are background",
    "scribble": "Scribble: only painted voxels count, the rest stays unknown",
}


class BarlWidget(QWidget):
    """Main dock widget of napari-barl.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer it docks into (napari passes it by this name).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = BarlState()
        self.sync: LabelsSync | None = None
        self._case_layers: list = []
        self._job_kind = ""
        self._job: SessionJob | None = None
        self.runner = JobRunner(parent=self)
        self.runner.update.connect(self._on_job_update)
        self.runner.finished.connect(self._on_job_finished)
        self._build()
        self._refresh_enabled()

    # ================================================================== layout
    def _build(self) -> None:
        inner = QWidget()
        lay = QVBoxLayout(inner)

        ws_box = QGroupBox("Workspace")
        ws_lay = QVBoxLayout(ws_box)
        self.ws_label = QLabel("no workspace: open or create a folder")
        self.ws_label.setWordWrap(True)
        row = QGridLayout()
        self.open_ws_btn = QPushButton("Open / create folder...")
        self.add_layers_btn = QPushButton("Add open images")
        self.add_layers_btn.setToolTip("add the image layers open in the viewer as cases")
        self.add_files_btn = QPushButton("Add files...")
        row.addWidget(self.open_ws_btn, 0, 0, 1, 2)
        row.addWidget(self.add_layers_btn, 1, 0)
        row.addWidget(self.add_files_btn, 1, 1)
        self.case_table = QTableWidget(0, 3)
        self.case_table.setHorizontalHeaderLabels(["case", "state", "disagreement"])
        self.case_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.case_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.case_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.case_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.case_table.horizontalHeader().setStretchLastSection(True)
        self.case_table.verticalHeader().setVisible(False)
        self.case_table.setMinimumHeight(100)
        ws_lay.addWidget(self.ws_label)
        ws_lay.addLayout(row)
        ws_lay.addWidget(self.case_table)

        cls_box = QGroupBox("Classes (double-click to rename; select to paint)")
        cls_lay = QVBoxLayout(cls_box)
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(80)
        crow = QHBoxLayout()
        self.add_class_btn = QPushButton("Add class")
        self.remove_class_btn = QPushButton("Remove last")
        crow.addWidget(self.add_class_btn)
        crow.addWidget(self.remove_class_btn)
        cls_lay.addWidget(self.class_list)
        cls_lay.addLayout(crow)

        ann_box = QGroupBox("Annotation")
        ann_lay = QVBoxLayout(ann_box)
        mode_row = QHBoxLayout()
        self.mode_slice = QRadioButton("Full slice")
        self.mode_slice.setToolTip(MODE_TEXT["slice"])
        self.mode_scribble = QRadioButton("Scribble")
        self.mode_scribble.setToolTip(MODE_TEXT["scribble"])
        self.mode_slice.setChecked(True)
        self._mode_group = QButtonGroup(self)
        for b in (self.mode_slice, self.mode_scribble):
            self._mode_group.addButton(b)
        mode_row.addWidget(QLabel("Paint mode:"))
        mode_row.addWidget(self.mode_slice)
        mode_row.addWidget(self.mode_scribble)
        mode_row.addStretch(1)
        self.mode_label = QLabel(MODE_TEXT["slice"])
        self.mode_label.setWordWrap(True)
        ann_lay.addLayout(mode_row)
        ann_lay.addWidget(self.mode_label)
        self.annotated_label = QLabel("annotated slices: none")
        self.annotated_label.setWordWrap(True)
        self.annotated_list = QListWidget()
        self.annotated_list.setFlow(QListWidget.LeftToRight)
        self.annotated_list.setWrapping(True)
        self.annotated_list.setMaximumHeight(34)
        arow = QHBoxLayout()
        self.mark_btn = QPushButton("Mark slice annotated")
        self.mark_btn.setToolTip(
            "count the current slice as annotated; unpainted voxels are background"
        )
        self.unmark_btn = QPushButton("Un-mark slice")
        self.accept_btn = QPushButton("Accept proposal on slice (Shift-A)")
        for b in (self.mark_btn, self.unmark_btn):
            arow.addWidget(b)
        self.minimap = UncertaintyMinimap()
        ann_lay.addWidget(self.minimap)
        ann_lay.addWidget(self.annotated_label)
        ann_lay.addWidget(self.annotated_list)
        ann_lay.addLayout(arow)
        ann_lay.addWidget(self.accept_btn)

        self.training = TrainingPanel()
        self.review = ReviewPanel()

        exp_box = QGroupBox("Export (NIfTI, source geometry)")
        erow = QHBoxLayout(exp_box)
        self.export_what = QComboBox()
        for key, text in EXPORTS:
            self.export_what.addItem(text, key)
        self.export_all = QCheckBox("all cases")
        self.export_btn = QPushButton("Export...")
        for w in (self.export_what, self.export_all, self.export_btn):
            erow.addWidget(w)

        self.quality = QualityController(self, self.state)
        q_box = QGroupBox("Proposals, history, versions, audit")
        q_box.setCheckable(True)  # collapsible: unchecking hides the tabs
        q_box.setChecked(True)
        q_lay = QVBoxLayout(q_box)
        q_lay.addWidget(self.quality.tabs)
        q_box.toggled.connect(self.quality.tabs.setVisible)
        self.quality_box = q_box
        # the order of the loop: data, paint, train, review, then the details and export
        self.tools = ToolsPanel(self, self.state)
        for box in (ws_box, cls_box, ann_box, self.training, self.review, self.tools, q_box,
                    exp_box):
            lay.addWidget(box)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        self.scroll = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # never narrower than the content: a narrower dock would clip it (no h-scrollbar);
        # the content's needs change (case names, texts), so follow its layout requests
        inner.installEventFilter(self)
        self._fit_width()

        self.open_ws_btn.clicked.connect(lambda: self._choose_workspace())
        self.add_layers_btn.clicked.connect(lambda: self.add_viewer_images())
        self.add_files_btn.clicked.connect(lambda: self._choose_files())
        self.case_table.cellClicked.connect(self._case_clicked)
        self.class_list.itemChanged.connect(self._class_renamed)
        self.class_list.currentRowChanged.connect(self._class_selected)
        self.add_class_btn.clicked.connect(lambda: self.add_class())
        self.remove_class_btn.clicked.connect(lambda: self.remove_last_class())
        self.annotated_list.itemClicked.connect(
            lambda it: self.go_to(self.current_case, int(it.text())) if self.current_case else None
        )
        self.mark_btn.clicked.connect(lambda: self.mark_current_slice(True))
        self.unmark_btn.clicked.connect(lambda: self.mark_current_slice(False))
        self.accept_btn.clicked.connect(lambda: self.accept_prediction_current_slice())
        self.training.train_requested.connect(self.start_training)
        self.training.cancel_requested.connect(self.cancel_job)
        self.review.predict_requested.connect(self.start_prediction)
        self.review.suggestion_activated.connect(self.go_to)
        self.export_btn.clicked.connect(lambda: self._choose_export())
        self.viewer.layers.events.removing.connect(self._layer_removing)
        self.minimap.slice_clicked.connect(
            lambda z: self.go_to(self.current_case, z) if self.current_case else None
        )
        self.viewer.dims.events.current_step.connect(self._dims_changed)
        self.mode_scribble.toggled.connect(
            lambda on: setattr(self.state, "paint_mode", "scribble" if on else "slice")
        )
        self.state.events.paint_mode.connect(self._mode_changed)
        self.state.events.model.connect(lambda _v: self._refresh_enabled())
        self.tools.failed.connect(lambda msg: _notify("error", msg))
        self.tools.labels_changed.connect(
            lambda: self._on_saved(self.workspace.annotated_slices(self.current_case))
        )
        for key, widget in (
            ("annotation/scribble", self.mode_scribble),
            ("export/what", self.export_what),
            ("export/all_cases", self.export_all),
            ("quality/expanded", q_box),
        ):
            _settings.bind(key, widget)
        self._window_filter = _WindowCloseFilter(self.shutdown, parent=self)
        self.state.paint_mode = self.paint_mode_from_buttons()
        self._mode_changed()

    def paint_mode_from_buttons(self) -> str:
        return "scribble" if self.mode_scribble.isChecked() else "slice"

    # ================================================================== paint mode
    @property
    def paint_mode(self) -> str:
        """``"slice"`` or ``"scribble"`` (``state.paint_mode``; see :mod:`napari_barl._annotation`)."""
        return self.state.paint_mode

    def _mode_changed(self, _mode: str | None = None) -> None:
        mode = self.paint_mode
        (self.mode_scribble if mode == "scribble" else self.mode_slice).setChecked(True)
        self.mode_label.setText(MODE_TEXT[mode])
        if self.sync is not None:
            self.sync.mode = mode
        self._class_selected(self.class_list.currentRow())
        self._show_mode_on_canvas()

    def _show_mode_on_canvas(self) -> None:
        """The paint mode is always on the canvas while a case is open."""
        overlay = self.viewer.text_overlay
        if self.sync is None:
            overlay.visible = False
            return
        overlay.text = CANVAS_MODE_TEXT[self.paint_mode]
        overlay.position = "top_left"
        overlay.font_size = 10
        overlay.color = "yellow" if self.paint_mode == "scribble" else "white"
        overlay.visible = True

    def _fit_width(self) -> None:
        inner = self.scroll.widget()
        need = inner.minimumSizeHint().width() + self.scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(max(400, need + 4))

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.LayoutRequest and obj is self.scroll.widget():
            self._fit_width()
        return False

    def _watch_window(self) -> None:
        """Once docked, watch napari's main window: closing the viewer stops our jobs."""
        window = self.window()
        if isinstance(window, QMainWindow):
            self._window_filter.watch(window)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._watch_window()
        super().showEvent(event)

    @property
    def session(self) -> Session | None:
        """The open workspace's use-cases (``state.session``)."""
        return self.state.session

    @property
    def current_case(self) -> str | None:
        """The case shown in the viewer (``state.case``)."""
        return self.state.case

    @property
    def workspace(self) -> Workspace | None:
        """The open workspace (the session's), or None."""
        return self.state.workspace

    def _dims_changed(self, _event=None) -> None:
        if self.labels_layer is not None:
            try:
                self.minimap.set_current(self.current_slice())
                self.quality.update_status()
                self.quality.refresh_history()
            except Exception:  # noqa: BLE001 (a repaint hint, never worth an error)
                pass

    def _refresh_enabled(self) -> None:
        has_ws = self.workspace is not None
        has_case = has_ws and self.current_case is not None
        running = self.runner.is_running()
        has_model = has_ws and self.workspace.current_model_path() is not None
        for b in (self.add_layers_btn, self.add_files_btn):
            b.setEnabled(has_ws)
        for b in (self.mark_btn, self.unmark_btn, self.export_btn):
            b.setEnabled(has_case)
        self.accept_btn.setEnabled(has_case and self.workspace.record(self.current_case).predicted)
        self.training.set_running(running, has_model)
        self.training.train_btn.setEnabled(has_ws and not running)
        self.review.set_running(running, has_model)

    # ================================================================== workspace
    def _choose_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Workspace folder (new or existing)")
        if folder:
            self.open_workspace(folder)

    @guarded
    def open_workspace(self, folder: str | Path, class_names: list[str] | None = None) -> Workspace:
        """Open the workspace in ``folder``, creating it if needed."""
        self._close_case()
        folder = Path(folder)
        self.state.session = Session.open(folder, class_names)
        self.state.model = self.session.current_version_id()
        self.ws_label.setText(f"workspace: {folder}")
        self._refresh_classes()
        self._refresh_cases()
        if self.workspace.cases:
            self.open_case(self.workspace.cases[0])
        self._refresh_enabled()
        return self.workspace

    def _require_workspace(self) -> Workspace:
        return self._require_session().workspace

    def _require_session(self) -> Session:
        if self.session is None:
            raise InputFileError("open or create a workspace folder first")
        return self.session

    @guarded
    def add_viewer_images(self) -> list[str]:
        """Add every Image layer of the viewer (not yet a case) to the workspace."""
        import napari

        session = self._require_session()
        added = []
        for layer in list(self.viewer.layers):
            if not isinstance(layer, napari.layers.Image) or layer.metadata.get(CASE_KEY):
                continue
            if layer.rgb or layer.ndim != 3 or layer.multiscale:
                _notify("warning", f"layer {layer.name!r} skipped: only single-channel 3D volumes")
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
        self._refresh_cases()
        if added and self.current_case is None:
            self.open_case(added[0])
        if not added:
            _notify("info", "no new 3D image layer to add")
        return added

    def _adopt_class_names(self) -> None:
        """Take class names offered by a layer (the phantom's) while nothing is labelled."""
        if self.session is None:
            return
        for layer in self.viewer.layers:
            if self.session.adopt_class_names(layer.metadata.get("barl_class_names")):
                self._refresh_classes()
                return

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add volumes", "", "Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd)"
        )
        for f in files:
            self.add_file(f)

    @guarded
    def add_file(self, path: str | Path) -> str:
        name = self._require_session().add_file(path)
        self._refresh_cases()
        if self.current_case is None:
            self.open_case(name)
        return name

    def _refresh_cases(self) -> None:
        ws = self.workspace
        self.case_table.setRowCount(0)
        if ws is None:
            return
        for name in ws.cases:
            r = self.case_table.rowCount()
            self.case_table.insertRow(r)
            score = ws.record(name).disagreement_score
            cells = [name, ws.case_state(name), "" if score is None else f"{score:.4f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if name == self.current_case:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.case_table.setItem(r, c, item)
        self.case_table.resizeColumnsToContents()

    def _case_clicked(self, row: int, _col: int) -> None:
        item = self.case_table.item(row, 0)
        if item is not None:
            self.open_case(item.text())

    # ================================================================== cases and layers
    @guarded
    def open_case(self, name: str) -> None:
        """Show a case: its image, its labels (autosaved), its prediction if any."""
        import napari

        ws = self._require_workspace()
        ws.record(name)
        if name == self.current_case and self.sync is not None:
            return
        self._close_case()
        image = ws.load_image(name)
        geo = geometry_kwargs(image, {CASE_KEY: name})
        img_layer = next(
            (
                ly
                for ly in self.viewer.layers
                if isinstance(ly, napari.layers.Image) and ly.metadata.get(CASE_KEY) == name
            ),
            None,
        )
        if img_layer is None:
            img_layer = self.viewer.add_image(image.array, name=name, colormap="gray", **geo)
            self._case_layers.append(img_layer)
        img_layer.visible = True
        for ly in self.viewer.layers:  # other cases' images out of the way
            # compared by case name, not identity: docked through npe2 the widget sees
            # the viewer through a proxy, and each access returns a new proxy object
            if isinstance(ly, napari.layers.Image) and ly.metadata.get(CASE_KEY) not in (
                None,
                name,
            ):
                ly.visible = False
        labels = ws.load_labels(name)
        lab_layer = self.viewer.add_labels(
            layer_data_from_labels(labels),
            name=f"{name} labels",
            colormap=class_colormap(ws.num_classes),
            **geo,
        )
        self._case_layers.append(lab_layer)
        self.viewer.scale_bar.visible = True  # in mm: the layers carry units
        self.sync = LabelsSync(ws, name, lab_layer, parent=self)
        self.sync.mode = self.paint_mode
        self.sync.saved.connect(self._on_saved)
        self.sync.failed.connect(lambda msg: _notify("error", msg))
        self.state.case = name  # the panels follow (tools, quality tabs)
        self.minimap.set_case(
            image.shape[0], None, ws.annotated_slices(name), ws.accepted_slices(name)
        )
        self._show_prediction()
        self.viewer.layers.selection.active = lab_layer
        lab_layer.selected_label = max(1, self.class_list.currentRow())
        self._refresh_classes()
        self._on_saved(ws.annotated_slices(name))
        self._show_mode_on_canvas()
        self._refresh_enabled()

    def _close_case(self) -> None:
        if self.sync is not None:
            self.sync.detach()
            self.sync = None
        for layer in self._case_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._case_layers = []
        self.state.case = None
        self.minimap.set_case(0, None, ())
        self._show_mode_on_canvas()

    def _layer_removing(self, event) -> None:
        """Save before the user deletes the labels layer of the current case."""
        try:
            layer = self.viewer.layers[event.index]
        except (IndexError, TypeError, AttributeError):
            return
        if self.sync is not None and same_layer(layer, self.sync.layer):
            self.sync.detach()
            self.sync = None

    def image_layer(self):
        """The open case's Image layer (None without a case)."""
        import napari

        for ly in self.viewer.layers:
            if isinstance(ly, napari.layers.Image) and (
                self.current_case is not None and ly.metadata.get(CASE_KEY) == self.current_case
            ):
                return ly
        return None

    @property
    def labels_layer(self):
        return self.sync.layer if self.sync is not None else None

    def show_annotated(self, slices: list) -> None:
        """Show the annotated slices (list, minimap, case table) after a save."""
        self._on_saved(slices)

    def _on_saved(self, slices: list) -> None:
        self.annotated_list.clear()
        for z in slices:
            self.annotated_list.addItem(str(z))
        self.annotated_label.setText(
            f"annotated slices ({len(slices)}): {', '.join(map(str, slices)) or 'none'}"
        )
        if self.workspace is not None and self.current_case is not None:
            self.minimap.set_marks(slices, self.workspace.accepted_slices(self.current_case))
            if self.quality.proposal is not None:
                hidden = [z for z in slices if (self.quality.proposal[z] != NEEDS_HUMAN).any()]
                if hidden:  # newly annotated slices: their proposal goes away
                    self.quality.refresh_proposals()
        self._dims_changed()
        self._refresh_cases()

    def save_now(self) -> list[int] | None:
        """Flush pending strokes to disk (also done on a timer and on close)."""
        return self.sync.flush() if self.sync is not None else None

    def current_slice(self) -> int:
        """Index along axis 0 of the slice the viewer shows for the current case."""
        layer = self.labels_layer
        if layer is None:
            raise InputFileError("open a case first")
        data_pos = layer.world_to_data(self.viewer.dims.point)
        z = int(np.round(data_pos[0]))
        return int(np.clip(z, 0, layer.data.shape[0] - 1))

    @guarded
    def go_to(self, case: str, z: int) -> None:
        """Open ``case`` and move the viewer to slice ``z`` (-1: its top suggestion)."""
        if case != self.current_case:
            self.open_case(case)
        if self.current_case != case:
            return
        if z < 0:
            top = self._slice_suggestions()
            z = top[0].index if top else self.labels_layer.data.shape[0] // 2
        layer = self.labels_layer
        shape = layer.data.shape
        world = layer.data_to_world((float(z), (shape[1] - 1) / 2, (shape[2] - 1) / 2))
        self.viewer.dims.set_point(0, float(world[0]))

    # ================================================================== classes
    def _class_names(self) -> list[str]:
        if self.workspace is not None:
            return list(self.workspace.class_names)
        return ["background", "foreground"]

    def _refresh_classes(self) -> None:
        names = self._class_names()
        row = self.class_list.currentRow()
        self.class_list.blockSignals(True)
        self.class_list.clear()
        layer = self.labels_layer
        for i, name in enumerate(names):
            item = QListWidgetItem(f"{name}")
            flags = item.flags() | Qt.ItemIsEditable if i > 0 else item.flags() & ~Qt.ItemIsEditable
            item.setFlags(flags)
            if layer is not None and i > 0:
                rgba = np.asarray(layer.get_color(i)) if layer.get_color(i) is not None else None
                if rgba is not None:
                    pix = QPixmap(12, 12)
                    pix.fill(QColor(*(int(255 * c) for c in rgba[:3])))
                    item.setIcon(QIcon(pix))
            self.class_list.addItem(item)
        self.class_list.setCurrentRow(row if 0 < row < len(names) else 1)
        self.class_list.blockSignals(False)

    @guarded
    def _class_renamed(self, _item) -> None:
        names = [self.class_list.item(i).text().strip() for i in range(self.class_list.count())]
        self._require_workspace().set_class_names(names)

    def _class_selected(self, row: int) -> None:
        if self.labels_layer is not None and row >= 0:
            # background is "erase" in full-slice mode, an explicit label when scribbling
            scribble_bg = row == 0 and self.paint_mode == "scribble"
            self.labels_layer.selected_label = SCRIBBLE_BACKGROUND if scribble_bg else row

    @guarded
    def add_class(self, name: str | None = None) -> None:
        ws = self._require_workspace()
        names = ws.class_names
        if len(names) >= SCRIBBLE_BACKGROUND:
            raise BarlError(f"at most {SCRIBBLE_BACKGROUND} classes")
        ws.set_class_names(names + [name or f"class_{len(names)}"])
        if self.labels_layer is not None:
            self.labels_layer.colormap = class_colormap(ws.num_classes)
        self._refresh_classes()

    @guarded
    def remove_last_class(self) -> None:
        ws = self._require_workspace()
        self.save_now()
        ws.set_class_names(ws.class_names[:-1])
        self._refresh_classes()

    # ================================================================== annotation buttons
    @guarded
    def mark_current_slice(self, annotated: bool = True) -> None:
        if self.sync is None:
            raise InputFileError("open a case first")
        self.sync.mark(self.current_slice(), annotated)

    @guarded
    def accept_prediction_current_slice(self) -> None:
        """Accept the model's proposal on the current slice: the same path as ``Shift-A``
        (asks first when little of the slice is proposed with confidence)."""
        if self.sync is None:
            raise InputFileError("open a case first")
        self.quality.accept_current()

    # ================================================================== jobs
    @guarded
    def start_training(self, fine_tune: bool = False) -> None:
        """Train (or fine-tune the current model) in a child process."""
        session = self._require_session()
        if self.runner.is_running():
            raise BarlError("a job is already running: wait for it or cancel it")
        self.save_now()
        if not session.has_annotations():
            _notify(
                "warning",
                "nothing to learn from yet: paint at least one slice "
                "(or mark one as all background) before training",
            )
            return
        config = self.training.build_config(session.class_names)
        self._start_job(session.start_training(config, fine_tune=fine_tune))

    @guarded
    def start_prediction(self, all_cases: bool = False, cases: list[str] | None = None) -> None:
        """Predict the current case (or all cases) with the current model, off-process.

        Each prediction also keeps the branches' agreement confidence (for proposals) and
        is filed under the current model version (for comparisons and validation).
        """
        session = self._require_session()
        if self.runner.is_running():
            raise BarlError("a job is already running: wait for it or cancel it")
        if cases is None:
            cases = session.cases if all_cases else ([self.current_case] if self.current_case else [])
        if not cases:
            raise InputFileError("open a case first")
        self._start_job(session.start_prediction(cases))

    def _start_job(self, job: SessionJob) -> None:
        kind = job.kind
        self._job, self._job_kind = job, kind
        self.state.job = kind
        if kind == "training":
            self.training.start_display("training")
        else:
            self.review.progress.setValue(0)
            self.review.status.setText("prediction: starting...")
        self._watch_window()  # docked by now, even if never shown
        self.runner.start(job.handle, kind)
        self._refresh_enabled()

    def cancel_job(self) -> None:
        self.runner.cancel()

    def is_busy(self) -> bool:
        return self.runner.is_running()

    def _on_job_update(self, upd) -> None:
        if self._job_kind == "training":
            self.training.show_update(upd, "training")
        else:
            total = getattr(upd, "total", 0) or 0
            if total:
                self.review.progress.setValue(int(100 * min(upd.iteration, total) / total))
            msg = getattr(upd, "message", "") or ""
            self.review.status.setText(f"prediction: {msg or f'{upd.iteration}/{total}'}")

    @guarded
    def _on_job_finished(self, upd) -> None:
        kind = self._job_kind
        try:
            if upd is None or upd.kind == "error":
                msg = getattr(upd, "message", None) or f"the {kind} process ended unexpectedly"
                if "out of memory" in msg.lower():
                    msg += " (try a smaller patch size or the CPU device)"
                self._end_display(kind, f"{kind} failed", False)
                _notify("error", f"{kind} failed: {msg}")
            elif upd.kind == "cancelled":
                # a cancelled run is not a model version: the working model stays as it was
                # (its last checkpoint stays on disk, in the run folder)
                if kind == "training":
                    self.session.finish(self._job, upd)
                self._end_display(kind, f"{kind} cancelled: the working model is unchanged", False)
            elif kind == "training":
                self._adopt_model(upd)
                self._end_display(kind, "training done", True)
                cases = self.session.evaluation_cases()
                if self.training.predict_after.isChecked() and self.current_case:
                    cases = sorted(set(cases) | {self.current_case})
                if cases:  # also scores the new version on the frozen validation slices
                    self._refresh_enabled()
                    self.start_prediction(False, cases=cases)
                    return
            else:
                self._collect_predictions(upd)
                self._end_display(kind, "prediction done", True)
        finally:
            if not self.runner.is_running():
                self.state.job = ""
            self._refresh_enabled()

    def _end_display(self, kind: str, text: str, complete: bool) -> None:
        if kind == "training":
            self.training.end_display(text, complete)
        else:
            if complete:
                self.review.progress.setValue(100)
            self.review.status.setText(text)

    def _adopt_model(self, upd) -> None:
        """File the run's model as the next version (the session does it) and say so."""
        version = self.session.finish(self._job, upd)
        if version is None:
            return
        self.state.model = version.id  # the quality tabs list it
        _notify("info", f"model ready: {version.id} ({Path(version.path).parent.name})")

    def _collect_predictions(self, upd) -> None:
        """File the job's predictions (the session does it) and show them."""
        outcome = self.session.finish(self._job, upd)
        for case in outcome.missing:
            _notify("warning", f"no prediction was written for case {case!r}")
        self.quality.refresh_versions()
        self.quality.calibrate()
        self._refresh_cases()
        self._show_prediction()

    # ================================================================== review
    def _show_prediction(self) -> None:
        """(Re)build the prediction and disagreement layers and the suggestions."""
        for name in (PREDICTION_LAYER, DISAGREEMENT_LAYER):
            for layer in [ly for ly in self.viewer.layers if ly.name == name]:
                self.viewer.layers.remove(layer)
                if layer in self._case_layers:
                    self._case_layers.remove(layer)
        ws, case = self.workspace, self.current_case
        if ws is None or case is None:
            return
        pred = ws.load_prediction(case)
        if pred is None:
            self.minimap.set_case(
                ws.reference(case).shape[0],
                None,
                ws.annotated_slices(case),
                ws.accepted_slices(case),
            )
            self.review.set_suggestions(case, [], [])
            self.review.status.setText("no prediction for this case yet")
            return
        geo = geometry_kwargs(ws.reference(case), {CASE_KEY: case})
        pred_layer = self.viewer.add_labels(
            pred.astype(np.uint8), name=PREDICTION_LAYER, opacity=0.45, **geo
        )
        self._case_layers.append(pred_layer)
        dis = ws.load_disagreement(case)
        profile, profile_label = self.session.slice_profile(case)
        self.minimap.set_case(
            pred.shape[0],
            profile,
            ws.annotated_slices(case),
            ws.accepted_slices(case),
        )
        self.minimap.setToolTip(f"Per slice: {profile_label}; the suggestions rank the same.")
        if dis is not None:
            hi = float(np.percentile(dis, 99.5))
            hi = hi if hi > 0 else float(dis.max()) or 1.0
            dis_layer = self.viewer.add_image(
                dis,
                name=DISAGREEMENT_LAYER,
                colormap="inferno",
                blending="additive",
                contrast_limits=(0.0, hi),
                opacity=0.8,
                **geo,
            )
            # a colour bar says what the colours mean (branch disagreement, 0 = agree)
            dis_layer.colorbar.visible = True
            self._case_layers.append(dis_layer)
        if self.labels_layer is not None:  # keep painting on top and active
            self.viewer.layers.move(
                self.viewer.layers.index(self.labels_layer), len(self.viewer.layers)
            )
            self.viewer.layers.selection.active = self.labels_layer
        self._update_suggestions()
        self.quality.refresh_proposals()

    def _slice_suggestions(self) -> list:
        if self.session is None or self.current_case is None:
            return []
        return self.session.suggest_slices(self.current_case, top_k=5, min_gap=2)

    def _update_suggestions(self) -> None:
        slices = self._slice_suggestions()
        cases = self.session.suggest_cases(top_k=5)
        self.review.set_suggestions(self.current_case, slices, cases)
        score = self.workspace.record(self.current_case).disagreement_score
        self.review.status.setText(
            f"{self.current_case}: mean disagreement {score:.4f}"
            if score is not None
            else f"{self.current_case}: predicted"
        )

    # ================================================================== export
    def _choose_export(self) -> None:
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
        session = self._require_session()
        self.save_now()
        cases = session.cases if all_cases else ([self.current_case] if self.current_case else [])
        folder = Path(folder)
        written, skipped = session.export(folder, what, cases)
        for case in skipped:
            _notify("warning", f"case {case!r} has no prediction: skipped")
        if written:
            _notify("info", f"exported {len(written)} file(s) to {folder}")
        return written

    # ================================================================== lifetime
    def shutdown(self) -> None:
        """Stop a running job and save labels (called when the widget or viewer closes).

        The job is cancelled first: saving touches widgets that may already be torn down,
        and nothing may keep a training child running without its window.
        """
        if self.runner.is_running():
            self.runner.cancel()
        if self.sync is not None:
            try:
                self.sync.flush()
            except Exception:  # noqa: BLE001 (closing: log, never raise into Qt)
                log.error("napari-barl: saving on close failed: %s", traceback.format_exc())

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        # napari hides dock widgets when its window closes: save then too
        if self.sync is not None:
            self.sync.flush()
        super().hideEvent(event)


class _WindowCloseFilter(QObject):
    """Calls ``on_close`` once the watched main window has closed (not when minimised).

    A dock widget gets no close event of its own when napari's window closes; the jobs it
    started must not run on without a window to show them.
    """

    def __init__(self, on_close, parent: QObject | None = None):
        super().__init__(parent)
        self._on_close = on_close
        self._window = None
        self._closing = False

    def watch(self, window: QMainWindow) -> None:
        # a weak reference: holding napari's window would keep the whole viewer alive
        old = self._window() if self._window is not None else None
        if old is window:
            return
        if old is not None:
            old.removeEventFilter(self)
        self._window = weakref.ref(window)
        window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        kind = event.type()
        if kind == QEvent.Close:
            self._closing = True  # napari may still ask "really close?"
        elif kind == QEvent.Hide and self._closing:
            self._closing = False
            self._on_close()
        elif kind in (QEvent.Show, QEvent.WindowActivate):
            self._closing = False  # the close was cancelled
        return False
