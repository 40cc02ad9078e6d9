"""The BARL dock widget: the panels of the annotation loop, composed in one scroll area.

The dock only composes: each panel subscribes to the shared
:class:`~napari_barl._state.BarlState` and calls the Qt-free
:class:`barl_core.workspace.session.Session`; the open case is
:class:`~napari_barl._case_view.CaseView`, jobs are
:class:`~napari_barl._jobs.JobController`. Panels appear in the order of the loop: data,
paint, train, review, then the details and export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QMainWindow, QVBoxLayout, QWidget

from ._annotation_panel import AnnotationPanel
from ._case_view import CaseView
from ._classes_panel import ClassesPanel
from ._export_panel import ExportPanel
from ._jobs import JobController
from ._lifetime import WindowCloseFilter
from ._notify import notify
from ._prediction_view import PredictionView
from ._quality import QualityController
from ._review_panel import ReviewPanel
from ._scroll import FittingScrollArea
from ._state import BarlState
from ._tools_panel import ToolsPanel
from ._training_panel import TrainingPanel
from ._workspace_panel import WorkspacePanel

if TYPE_CHECKING:
    import napari

__all__ = ["BarlWidget"]


class BarlWidget(QWidget):
    """Main dock widget of napari-barl (the npe2 manifest's widget command).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer it docks into (napari passes it by this name).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = state = BarlState()
        self.case_view = view = CaseView(napari_viewer, state, parent=self)
        self.workspace_panel = WorkspacePanel(view, state)
        self.classes = ClassesPanel(view, state)
        self.annotation = AnnotationPanel(view, state)
        self.training, self.review = TrainingPanel(), ReviewPanel()
        self.jobs = JobController(view, state, self.training, self.review, parent=self)
        self.tools = ToolsPanel(view, state)
        self.export_panel = ExportPanel(view, state)
        self.quality = QualityController(
            view, state, all_cases=self.export_panel.export_all.isChecked, parent=self
        )
        self.predictions = PredictionView(view, state, self.review, parent=self)
        self.predictions.shown.connect(self.quality.refresh_proposals)
        self.annotation.accept_requested.connect(self.quality.accept_current)
        self.tools.failed.connect(lambda msg: notify("error", msg))
        self.scroll = FittingScrollArea(
            (self.workspace_panel, self.classes, self.annotation, self.training, self.review)
            + (self.tools, self.quality.box, self.export_panel)
        )
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        self._window_filter = WindowCloseFilter(self.shutdown, parent=self)
        state.events.job.connect(lambda job: job and self._watch_window())

    def _watch_window(self) -> None:
        """Once docked, watch napari's main window: closing the viewer stops our jobs."""
        if isinstance(self.window(), QMainWindow):
            self._window_filter.watch(self.window())

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Start watching the main window as soon as the dock is shown in it."""
        self._watch_window()
        super().showEvent(event)

    def shutdown(self) -> None:
        """Stop a running job, then save the labels (the widget or viewer is closing).

        The job is cancelled first: saving touches widgets that may already be torn down,
        and nothing may keep a training child running without its window.
        """
        self.jobs.cancel()
        self.case_view.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Stop jobs and save when the dock closes."""
        self.shutdown()
        super().closeEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Save when hidden: napari hides dock widgets when its window closes."""
        self.case_view.save_now()
        super().hideEvent(event)
