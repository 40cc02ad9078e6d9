"""Radiologist tools: window/level, linked views, fill between slices, paint-over, 3D view.

What 3D Slicer's Segment Editor and ITK-SNAP users reach for, built on napari where it
already has the feature (contrast limits, ``preserve_labels``, the 3D canvas). The panel
reads the open case through a small :class:`CaseContext` and never touches other panels;
it follows the open case through :class:`~napari_barl._state.BarlState`; the
interpolation itself is :mod:`barl_core.active.interpolate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

from barl_core.active.interpolate import bracketing_slices, interpolate_between
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError

from ._layers import single_colour_labels

__all__ = ["ToolsPanel", "WINDOW_PRESETS", "window_limits", "FILL_LAYER", "CaseContext"]

FILL_LAYER = "fill between slices"


@dataclass(frozen=True)
class WindowPreset:
    """A named window: fixed HU (``width``/``level``) or percentiles of the volume."""

    name: str
    width: float | None = None
    level: float | None = None
    percentiles: tuple[float, float] | None = None


#: CT windows in Hounsfield units (W/L as radiology departments use them); CBCT grey values
#: are not calibrated HU and MR has no absolute scale, so those take the volume's percentiles.
WINDOW_PRESETS = (
    WindowPreset("CT bone (W 2000 / L 400)", 2000, 400),
    WindowPreset("CT soft tissue (W 400 / L 40)", 400, 40),
    WindowPreset("CT lung (W 1500 / L -600)", 1500, -600),
    WindowPreset("CBCT (0.5-99.5 percentile)", percentiles=(0.5, 99.5)),
    WindowPreset("MR auto-contrast (1-99 percentile)", percentiles=(1.0, 99.0)),
)


def window_limits(preset: WindowPreset, data: np.ndarray) -> tuple[float, float]:
    """Contrast limits ``(low, high)`` of ``preset`` for ``data``."""
    if preset.percentiles is not None:
        sample = np.asarray(data)[:: max(1, data.shape[0] // 32)]
        lo, hi = np.percentile(sample, preset.percentiles)
        return float(lo), float(max(hi, lo + 1e-6))
    return preset.level - preset.width / 2, preset.level + preset.width / 2


class CaseContext(Protocol):
    """What the tools need to know about the open case (the dock widget provides it)."""

    viewer: Any
    workspace: Any
    current_case: str | None

    @property
    def labels_layer(self) -> Any:
        """The open case's Labels layer, or None."""

    @property
    def sync(self) -> Any:
        """The open case's autosave binding, or None."""

    def current_slice(self) -> int:
        """Return the axis-0 index of the slice on screen."""

    def image_layer(self) -> Any:
        """Return the open case's Image layer, or None."""


class ToolsPanel(QGroupBox):
    """Window/level, fill between slices, paint-over protection and the 3D view.

    Signals
    -------
    failed(str)
        A tool was refused (shown as a notification by the dock).
    labels_changed()
        Accepting a fill changed the labels on disk.
    """

    failed = Signal(str)
    labels_changed = Signal()

    def __init__(self, context: CaseContext, state, parent: QWidget | None = None):
        super().__init__("Tools", parent)
        self.ctx = context
        state.events.case.connect(lambda _case: self.case_changed())
        self._fill: dict[int, np.ndarray] = {}
        self.window_box = QComboBox()
        self.window_box.addItem("Window / level...")
        for p in WINDOW_PRESETS:
            self.window_box.addItem(p.name)
        self.window_box.setToolTip("contrast presets for the case image")
        self.fill_btn = QPushButton("Fill between slices")
        self.fill_btn.setToolTip(
            "interpolate the structures of the nearest fully annotated slices below and above "
            "the current one into proposals (outlined), to accept or correct"
        )
        self.accept_fill_btn = QPushButton("Accept fill")
        self.accept_fill_btn.setEnabled(False)
        self.fill_status = QLabel("")
        self.fill_status.setWordWrap(True)
        self.protect = QCheckBox("Paint over empty voxels only (protect other classes)")
        self.view3d_btn = QPushButton("3D view")
        self.view3d_btn.setCheckable(True)
        self.view3d_btn.setToolTip("show the segmentation as surfaces in 3D (toggle)")
        self.ortho_btn = QPushButton("Linked views")
        self.ortho_btn.setCheckable(True)
        self.ortho_btn.setToolTip(
            "coronal and sagittal views through the current point, with a crosshair "
            "(radiological convention); click them to move there"
        )
        self.ortho = None
        lay = QGridLayout(self)
        lay.addWidget(self.window_box, 0, 0)
        lay.addWidget(self.view3d_btn, 0, 1)
        lay.addWidget(self.fill_btn, 1, 0)
        lay.addWidget(self.accept_fill_btn, 1, 1)
        lay.addWidget(self.fill_status, 2, 0, 1, 2)
        lay.addWidget(self.protect, 3, 0, 1, 2)
        # filling writes labels: off while another process holds the workspace
        state.events.read_only.connect(lambda ro: self.fill_btn.setEnabled(not ro))
        lay.addWidget(self.ortho_btn, 4, 0)
        self.window_box.activated.connect(self._window_chosen)
        self.fill_btn.clicked.connect(lambda: self._guard(self.fill_between))
        self.accept_fill_btn.clicked.connect(lambda: self._guard(self.accept_fill))
        self.protect.toggled.connect(lambda _on: self.apply_protection())
        self.view3d_btn.toggled.connect(self.show_3d)
        self.ortho_btn.toggled.connect(self.show_linked_views)

    def _guard(self, action) -> None:
        try:
            action()
        except InputFileError as exc:
            self.failed.emit(str(exc))

    # ------------------------------------------------------------------ window / level
    def _window_chosen(self, index: int) -> None:
        if index > 0:
            self.apply_window(WINDOW_PRESETS[index - 1])
        self.window_box.setCurrentIndex(0)

    def apply_window(self, preset: WindowPreset) -> tuple[float, float] | None:
        """Set the case image's contrast limits to ``preset``."""
        layer = self.ctx.image_layer()
        if layer is None:
            return None
        lo, hi = window_limits(preset, np.asarray(layer.data))
        rlo, rhi = layer.contrast_limits_range
        layer.contrast_limits_range = (min(rlo, lo), max(rhi, hi))
        layer.contrast_limits = (lo, hi)
        return lo, hi

    # ------------------------------------------------------------------ paint-over
    def apply_protection(self) -> None:
        """Napari's ``preserve_labels``: the brush paints only where there is no label yet."""
        layer = self.ctx.labels_layer
        if layer is not None:
            layer.preserve_labels = self.protect.isChecked()

    # ------------------------------------------------------------------ fill between
    def fill_between(self) -> dict[int, np.ndarray]:
        """Interpolate between the annotated slices around the current one; show it outlined."""
        ws, case, sync = self.ctx.workspace, self.ctx.current_case, self.ctx.sync
        if ws is None or case is None or sync is None:
            raise InputFileError("open a case first")
        sync.flush()
        labels = ws.load_labels(case)
        z = self.ctx.current_slice()
        pair = bracketing_slices(labels, z)
        if pair is None:
            raise InputFileError(
                f"slice {z}: fill between needs a fully annotated slice below and above it"
            )
        spacing = ws.reference(case).spacing
        fill = interpolate_between(labels, *pair, spacing_yx=spacing[1:])
        self._fill = {k: v for k, v in fill.items() if (labels[k] == IGNORE_INDEX).all()}
        if not self._fill:
            raise InputFileError(f"every slice between {pair[0]} and {pair[1]} is annotated")
        self._show_fill(labels.shape)
        self.fill_status.setText(
            f"{len(self._fill)} slices filled between {pair[0]} and {pair[1]} (outlined): "
            "check them, then Accept fill"
        )
        self.accept_fill_btn.setEnabled(True)
        return self._fill

    def _show_fill(self, shape) -> None:
        viewer = self.ctx.viewer
        self._remove_fill_layer()
        data = np.zeros(shape, np.uint8)
        for z, sl in self._fill.items():
            data[z] = sl
        ref = self.ctx.labels_layer
        layer = viewer.add_labels(
            data,
            name=FILL_LAYER,
            scale=ref.scale,
            translate=ref.translate,
            affine=ref.affine.affine_matrix,
            units=ref.units,  # one unit across layers, or napari's scale bar drops "mm"
            opacity=0.9,
        )
        layer.contour = 1
        layer.colormap = single_colour_labels("orange")
        viewer.layers.selection.active = ref  # keep painting on the case labels

    def _remove_fill_layer(self) -> None:
        viewer = self.ctx.viewer
        for layer in [ly for ly in viewer.layers if ly.name == FILL_LAYER]:
            viewer.layers.remove(layer)

    def accept_fill(self) -> list[int]:
        """Write the filled slices as annotated (recorded as accepted interpolation)."""
        sync = self.ctx.sync
        if not self._fill or sync is None:
            raise InputFileError("nothing to accept: click Fill between slices first")
        slices = sync.set_slices(self._fill, how="accepted", note="fill between slices")
        self._fill = {}
        self._remove_fill_layer()
        self.accept_fill_btn.setEnabled(False)
        self.fill_status.setText("fill accepted")
        self.labels_changed.emit()
        return slices or []

    def case_changed(self) -> None:
        """Forget a pending fill when another case opens; linked views follow the case."""
        self._fill = {}
        self.accept_fill_btn.setEnabled(False)
        self.fill_status.setText("")
        self.apply_protection()
        if self.ortho_btn.isChecked():
            self.show_linked_views(False)
            self.show_linked_views(True)

    # ------------------------------------------------------------------ linked views
    def show_linked_views(self, on: bool) -> None:
        """Dock (or remove) coronal and sagittal views linked to the viewer's point."""
        from ._ortho import OrthoViews

        viewer = self.ctx.viewer
        if self.ortho is not None:
            self.ortho.disconnect_viewer()
            viewer.window.remove_dock_widget(self.ortho)
            self.ortho = None
        layer = self.ctx.image_layer() if on else None
        if layer is None:
            if on:
                self.ortho_btn.setChecked(False)
                self.failed.emit("open a case first")
            return
        self.ortho = OrthoViews(viewer, layer)
        viewer.window.add_dock_widget(self.ortho, name="BARL linked views", area="bottom")

    # ------------------------------------------------------------------ 3D
    def show_3d(self, on: bool) -> None:
        """Toggle napari's 3D canvas; Labels layers render as category surfaces there."""
        self.ctx.viewer.dims.ndisplay = 3 if on else 2
