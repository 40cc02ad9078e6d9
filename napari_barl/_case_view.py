"""The open case in the viewer: its image and labels layers, autosave and navigation.

Why one object: every panel needs "the case on screen" (its labels layer, the slice the
viewer shows, a save before work) but none may own it. :class:`CaseView` opens and closes
cases (setting ``state.case``), binds the labels layer to the workspace
(:class:`~napari_barl._annotation.LabelsSync`) and bumps ``state.labels_saved`` after each
save, so whatever shows annotations follows without being told. It also satisfies the
tools panel's :class:`~napari_barl._tools_panel.CaseContext`.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject

from barl_core.errors import InputFileError

from ._annotation import LabelsSync, layer_data_from_labels
from ._layers import CASE_KEY, class_colormap, geometry_kwargs, same_layer
from ._notify import guarded, notify
from ._state import BarlState

if TYPE_CHECKING:
    import napari

__all__ = ["CaseView", "CANVAS_MODE_TEXT"]

log = logging.getLogger(__name__)

#: The paint mode, written on the canvas while a case is open.
CANVAS_MODE_TEXT = {
    "slice": "BARL: full-slice mode (unpainted = background)",
    "scribble": "BARL: scribble mode (unpainted = unknown)",
}


class CaseView(QObject):
    """Show one case at a time and keep its labels saved.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (possibly npe2's proxy of it).
    state : BarlState
        The dock's shared state; ``case`` is set here, ``paint_mode`` and ``classes``
        are followed.
    """

    def __init__(self, viewer: napari.Viewer, state: BarlState, parent: QObject | None = None):
        super().__init__(parent)
        self.viewer, self.state = viewer, state
        self.sync: LabelsSync | None = None
        self._layers: list = []  # layers this view added (image, labels)
        state.events.paint_mode.connect(self._mode_changed)
        state.events.classes.connect(self._classes_changed)
        viewer.layers.events.removing.connect(self._layer_removing)

    # ------------------------------------------------------------------ what panels read
    @property
    def workspace(self):
        """The open workspace, or None."""
        return self.state.workspace

    @property
    def current_case(self) -> str | None:
        """The case on screen (``state.case``)."""
        return self.state.case

    @property
    def labels_layer(self):
        """The open case's Labels layer (None without a case)."""
        return self.sync.layer if self.sync is not None else None

    def image_layer(self):
        """Return the open case's Image layer (None without a case)."""
        import napari

        case = self.state.case
        for ly in self.viewer.layers:
            if isinstance(ly, napari.layers.Image) and case is not None:
                if ly.metadata.get(CASE_KEY) == case:
                    return ly
        return None

    def current_slice(self) -> int:
        """Return the axis-0 index of the slice the viewer shows for the open case."""
        layer = self.labels_layer
        if layer is None:
            raise InputFileError("open a case first")
        z = int(np.round(layer.world_to_data(self.viewer.dims.point)[0]))
        return int(np.clip(z, 0, layer.data.shape[0] - 1))

    def save_now(self) -> list[int] | None:
        """Flush pending strokes to disk (also done on a timer and on close)."""
        return self.sync.flush() if self.sync is not None else None

    # ------------------------------------------------------------------ open and close
    @guarded
    def open(self, name: str) -> None:
        """Show case ``name``: its image, and its labels bound to the workspace."""
        import napari

        ws = self.state.require_session().workspace
        ws.record(name)  # an unknown case is the user's error, before anything closes
        if name == self.state.case and self.sync is not None:
            return
        self.close()
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
            self._layers.append(img_layer)
        img_layer.visible = True
        for ly in self.viewer.layers:  # other cases' images out of the way
            # compared by case name, not identity: docked through npe2 the widget sees
            # the viewer through a proxy, and each access returns a new proxy object
            if isinstance(ly, napari.layers.Image) and ly.metadata.get(CASE_KEY) not in (
                None,
                name,
            ):
                ly.visible = False
        lab_layer = self.viewer.add_labels(
            layer_data_from_labels(ws.load_labels(name)),
            name=f"{name} labels",
            colormap=class_colormap(ws.num_classes),
            **geo,
        )
        lab_layer.editable = not self.state.read_only
        self._layers.append(lab_layer)
        self.viewer.scale_bar.visible = True  # in mm: the layers carry units
        self.sync = LabelsSync(ws, name, lab_layer, parent=self)
        self.sync.mode = self.state.paint_mode
        self.sync.saved.connect(self._saved)
        self.sync.failed.connect(lambda msg: notify("error", msg))
        self.state.case = name  # the panels follow
        self.state.labels_saved += 1  # what is annotated on this case
        self.viewer.layers.selection.active = lab_layer
        self._show_mode_on_canvas()

    def close(self) -> None:
        """Save and remove the open case's layers; ``state.case`` becomes None."""
        if self.sync is not None:
            self.sync.detach()
            self.sync = None
        for layer in self._layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._layers = []
        self.state.case = None
        self._show_mode_on_canvas()

    def shutdown(self) -> None:
        """Save pending strokes while the app closes: log a failure, never raise into Qt."""
        if self.sync is None:
            return
        try:
            self.sync.flush()
        except Exception:  # noqa: BLE001 (closing)
            log.error("napari-barl: saving on close failed: %s", traceback.format_exc())

    def _saved(self, _slices: list) -> None:
        self.state.labels_saved += 1

    def _layer_removing(self, event) -> None:
        """Save before the user deletes the labels layer of the open case."""
        try:
            layer = self.viewer.layers[event.index]
        except (IndexError, TypeError, AttributeError):
            return
        if self.sync is not None and same_layer(layer, self.sync.layer):
            self.sync.detach()
            self.sync = None

    # ------------------------------------------------------------------ navigation
    @guarded
    def go_to(self, case: str, z: int) -> None:
        """Open ``case`` and move the viewer to slice ``z`` (-1: its top suggestion)."""
        if case != self.state.case:
            self.open(case)
        if self.state.case != case:
            return
        layer = self.labels_layer
        shape = layer.data.shape
        if z < 0:
            top = self.state.session.suggest_slices(case, top_k=5, min_gap=2)
            z = top[0].index if top else shape[0] // 2
        world = layer.data_to_world((float(z), (shape[1] - 1) / 2, (shape[2] - 1) / 2))
        self.viewer.dims.set_point(0, float(world[0]))

    # ------------------------------------------------------------------ followers
    def _mode_changed(self, mode: str) -> None:
        if self.sync is not None:
            self.sync.mode = mode
        self._show_mode_on_canvas()

    def _classes_changed(self, classes: tuple) -> None:
        if self.labels_layer is not None:  # a new class has its colour at once
            self.labels_layer.colormap = class_colormap(len(classes))

    def _show_mode_on_canvas(self) -> None:
        """Keep the paint mode on the canvas while a case is open."""
        overlay = self.viewer.text_overlay
        if self.sync is None:
            overlay.visible = False
            return
        mode = self.state.paint_mode
        overlay.text = CANVAS_MODE_TEXT[mode]
        overlay.position = "top_left"
        overlay.font_size = 10
        overlay.color = "yellow" if mode == "scribble" else "white"
        overlay.visible = True
