"""The open case's prediction as layers, and the suggestions of what to annotate next.

Why apart from the jobs: a prediction is shown whenever the open case changes or new
predictions are filed (``state.case``, ``state.predictions``), whoever made them. This
controller rebuilds the prediction and disagreement layers, fills the
:class:`~napari_barl._review_panel.ReviewPanel`'s suggestion list, and emits ``shown`` so
that views drawn over the prediction (proposals) redraw on top of it.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QObject, Signal

from ._case_view import CaseView
from ._layers import CASE_KEY, geometry_kwargs, same_layer
from ._review_panel import ReviewPanel
from ._state import BarlState

__all__ = ["PredictionView", "PREDICTION_LAYER", "DISAGREEMENT_LAYER"]

PREDICTION_LAYER = "prediction"
DISAGREEMENT_LAYER = "disagreement"


class PredictionView(QObject):
    """Show the open case's stored prediction, disagreement map and suggestions.

    Parameters
    ----------
    view : CaseView
        The open case (its labels layer stays on top; suggestions navigate it).
    state : BarlState
        The dock's shared state.
    panel : ReviewPanel
        Where the suggestions and the status line go.

    Signals
    -------
    shown()
        The prediction layers were rebuilt (or removed: the case has none).
    """

    shown = Signal()

    def __init__(
        self, view: CaseView, state: BarlState, panel: ReviewPanel, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.view, self.state, self.panel = view, state, panel
        self._layers: list = []
        state.events.case.connect(lambda _c: self.show())
        state.events.predictions.connect(lambda _n: self.show())
        panel.suggestion_activated.connect(view.go_to)

    def _remove_layers(self) -> None:
        layers = self.view.viewer.layers
        for layer in [ly for ly in layers if ly.name in (PREDICTION_LAYER, DISAGREEMENT_LAYER)]:
            layers.remove(layer)
        self._layers = [ly for ly in self._layers if ly in layers]

    def show(self) -> None:
        """(Re)build the prediction and disagreement layers and the suggestions."""
        self._remove_layers()
        ws, case = self.state.workspace, self.state.case
        if ws is None or case is None:
            return
        pred = ws.load_prediction(case)
        if pred is None:
            self.panel.set_suggestions(case, [], [])
            self.panel.status.setText("no prediction for this case yet")
            self.shown.emit()
            return
        viewer = self.view.viewer
        geo = geometry_kwargs(ws.reference(case), {CASE_KEY: case})
        self._layers.append(
            viewer.add_labels(pred.astype(np.uint8), name=PREDICTION_LAYER, opacity=0.45, **geo)
        )
        dis = ws.load_disagreement(case)
        if dis is not None:
            hi = float(np.percentile(dis, 99.5))
            hi = hi if hi > 0 else float(dis.max()) or 1.0
            dis_layer = viewer.add_image(
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
            self._layers.append(dis_layer)
        labels = self.view.labels_layer
        if labels is not None:  # keep painting on top and active
            idx = next(i for i, ly in enumerate(viewer.layers) if same_layer(ly, labels))
            viewer.layers.move(idx, len(viewer.layers))
            viewer.layers.selection.active = labels
        self._show_suggestions()
        self.shown.emit()

    def _show_suggestions(self) -> None:
        session, case = self.state.session, self.state.case
        slices = session.suggest_slices(case, top_k=5, min_gap=2)
        self.panel.set_suggestions(case, slices, session.suggest_cases(top_k=5))
        self.panel.show_case_place(case, session.case_ranking().cases)
