"""The dock widget's workspace and annotation path, driven as a user would."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from barl_core.data.labels import IGNORE_INDEX
from barl_core.workspace.layout import Workspace
from napari_barl._widget import BarlWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(
        rng.normal(size=(12, 20, 16)).astype(np.float32),
        name="scan one",
        scale=(2.0, 0.5, 0.5),
        translate=(4.0, -3.0, 1.0),
    )
    w = BarlWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.workspace_panel.open_workspace(tmp_path / "ws")
    assert w.workspace_panel.add_viewer_images() == ["scan_one"]
    yield w
    w.shutdown()


def _go(w, z):
    w.case_view.go_to(w.state.case, z)
    assert w.case_view.current_slice() == z
    assert w.viewer.dims.current_step[0] == z


def test_paint_autosave_and_reopen(widget, qtbot, tmp_path):
    w = widget
    layer = w.case_view.labels_layer
    assert layer is not None and w.state.case == "scan_one"
    _go(w, 3)
    layer.brush_size = 3
    layer.paint((3, 10, 8), 1)  # a real brush stroke: emits the paint event
    assert w.case_view.sync.dirty
    qtbot.waitUntil(lambda: not w.case_view.sync.dirty, timeout=5000)  # debounced autosave
    ws = Workspace.open(tmp_path / "ws")
    assert ws.annotated_slices("scan_one") == [3]
    lab = ws.load_labels("scan_one")
    assert lab[3, 10, 8] == 1 and (lab[3] != IGNORE_INDEX).all()
    assert (lab[4] == IGNORE_INDEX).all()

    # mark / un-mark through the buttons at the current slice
    _go(w, 7)
    w.annotation.mark_btn.click()
    assert Workspace.open(tmp_path / "ws").annotated_slices("scan_one") == [3, 7]
    _go(w, 3)
    w.annotation.unmark_btn.click()
    assert Workspace.open(tmp_path / "ws").annotated_slices("scan_one") == [7]
    assert layer.data[3].max() == 0
    assert "1 slice annotated" in w.workspace_panel.case_table.item(0, 1).text()

    # the minimap marks annotated slices and jumps where it is clicked
    assert w.annotation.minimap.annotated == {7} and w.annotation.minimap.n_slices == 12
    x = int((5 + 0.5) * w.annotation.minimap.width() / 12)
    qtbot.mouseClick(w.annotation.minimap, Qt.LeftButton, pos=QPoint(x, 10))
    assert w.viewer.dims.current_step[0] == 5 and w.annotation.minimap.current == 5

    # painting then closing before the timer fires loses nothing
    _go(w, 9)
    layer.paint((9, 5, 5), 1)
    w.close()
    assert Workspace.open(tmp_path / "ws").annotated_slices("scan_one") == [7, 9]

    # a fresh widget on the same folder shows the labels again
    w2 = BarlWidget(w.viewer)
    w2.workspace_panel.open_workspace(tmp_path / "ws")
    assert w2.case_view.labels_layer.data[9, 5, 5] == 1
    assert [w2.annotation.annotated_list.item(i).text() for i in range(w2.annotation.annotated_list.count())] == [
        "7",
        "9",
    ]
    w2.shutdown()


def test_errors_become_notifications(widget, monkeypatch):
    shown = []
    import napari.utils.notifications as nt

    monkeypatch.setattr(nt, "show_error", lambda m: shown.append(("error", m)))
    monkeypatch.setattr(nt, "show_warning", lambda m: shown.append(("warning", m)))
    w = widget
    w.jobs.start_training(False)  # nothing annotated yet
    assert shown and shown[-1][0] == "warning" and "paint" in shown[-1][1]
    w.jobs.start_prediction(False)  # no model
    assert shown[-1][0] == "error" and "model" in shown[-1][1]
    w.case_view.labels_layer.data[2, 0, 0] = 9  # not a class: refused, not lost
    w.case_view.sync.schedule()
    w.case_view.save_now()
    assert shown[-1][0] == "error" and "not classes" in shown[-1][1]
    assert w.case_view.labels_layer.data[2, 0, 0] == 9
    w.case_view.labels_layer.data[2, 0, 0] = 0
    w.workspace_panel.open_workspace(w.state.workspace.folder / "imagesTr" / "scan_one.nii.gz")  # a file, not a folder
    assert shown[-1][0] == "error"


class _ScriptedHandle:
    """Stands in for a child-process job: replays updates, one batch per poll."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.cancelled = False

    def poll(self):
        return self.batches.pop(0) if self.batches else []

    def is_running(self):
        return bool(self.batches)

    def cancel(self):
        self.cancelled = True


def _update(kind, iteration=0, total=4, message="", loss=None):
    return SimpleNamespace(
        kind=kind,
        iteration=iteration,
        total=total,
        losses={} if loss is None else {"total": loss},
        its_per_s=2.0,
        eta_s=1.0,
        message=message,
        result_path=None,
    )


def test_training_failure_is_reported_and_labels_kept(widget, qtbot, monkeypatch):
    shown = []
    import napari.utils.notifications as nt

    monkeypatch.setattr(nt, "show_error", lambda m: shown.append(m))
    handles = []

    def fake_start(config, images_dir, labels_dir, out_dir, init_from=None, time_budget_s=None):
        assert config.iterations == widget.training.iterations.value()
        assert time_budget_s == widget.training.time_budget_s()  # the quick preset's plan
        h = _ScriptedHandle(
            [
                [_update("progress", 1, loss=1.0)],
                [_update("progress", 2, loss=0.8)],
                [_update("error", message="CUDA out of memory. Tried to allocate 2 GiB")],
            ]
        )
        handles.append(h)
        return h

    fake = ModuleType("barl_core.runtime.jobs")
    fake.TrainJob = SimpleNamespace(start=fake_start)
    monkeypatch.setitem(sys.modules, "barl_core.runtime.jobs", fake)
    w = widget
    w.case_view.sync.mark(4, True)
    w.jobs.start_training(False)
    assert w.jobs.is_busy() and not w.training.train_btn.isEnabled()
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=5000)
    assert any("out of memory" in m and "smaller patch" in m for m in shown)
    assert w.training.loss_plot.values == [1.0, 0.8]
    assert w.training.train_btn.isEnabled()
    assert w.state.workspace.annotated_slices("scan_one") == [4]


def test_training_status_says_why_a_run_stopped_early(widget, qtbot, monkeypatch):
    # the engine's notice while it stops, then its summary in the done update (TrainResult.summary)
    stop = "completed after 2 of 4 iterations: stopped at the time limit (2.0 min)"

    def fake_start(config, images_dir, labels_dir, out_dir, init_from=None, time_budget_s=None):
        return _ScriptedHandle([
            [_update("progress", 1, loss=1.0)],
            [_update("message", 2, message="time limit of 2.0 min reached (1.9 min spent): stopping at iteration 2 of 4")],
            [_update("done", 2, message=stop)],
        ])

    fake = ModuleType("barl_core.runtime.jobs")
    fake.TrainJob = SimpleNamespace(start=fake_start)
    monkeypatch.setitem(sys.modules, "barl_core.runtime.jobs", fake)
    w = widget
    monkeypatch.setattr(w.jobs, "_adopt_model", lambda job, upd: None)  # no model file to file
    w.training.predict_after.setChecked(False)
    w.case_view.sync.mark(4, True)
    w.jobs.start_training(False)
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=5000)
    assert w.training.eta_label.text() == f"training {stop}"
    assert w.training.progress.value() == 100
