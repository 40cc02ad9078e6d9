"""Issue 15: what a radiologist hits, driven the user's way (npe2 dock, files through the plugin)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import add_files_via_dialog, dock, open_workspace_via_dialog, phantom_files

pytestmark = pytest.mark.gui


@pytest.fixture
def user(make_napari_viewer, tmp_path, monkeypatch):
    """A viewer with the dock (through npe2), a workspace and one phantom added as a file."""
    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    img, truth = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    yield viewer, w, truth
    w.shutdown()


def _image_layers(viewer):
    import napari

    return [ly for ly in viewer.layers if isinstance(ly, napari.layers.Image)]


def test_opened_case_is_visible_not_black(user, monkeypatch, tmp_path):
    viewer, w, _truth = user
    [img] = _image_layers(viewer)
    assert img.visible, "the image of a case the plugin opened must be visible"
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].max() > 0, "the canvas is black"
    # a second case through the dialog, then back to the first: each shows its image
    img2, _ = phantom_files(tmp_path / "data2", seed=1)
    add_files_via_dialog(w, monkeypatch, [img2])
    w.case_table.cellClicked.emit(1, 0)
    assert w.current_case == "phantom1"
    visible = [ly.name for ly in _image_layers(viewer) if ly.visible]
    assert visible == ["phantom1"]
    w.case_table.cellClicked.emit(0, 0)
    assert [ly.name for ly in _image_layers(viewer) if ly.visible] == ["phantom0"]


def _truth(path):
    from barl_core.io.volume import read_volume

    return (read_volume(path).array > 0).astype(np.uint8)  # one foreground class


def test_add_files_paint_train_gives_readable_result(user, qtbot):
    """Issue 15 "Done when": Add files, paint, train; and versions book-kept honestly."""
    from napari_barl._quality import NEEDS_HUMAN_LAYER
    from napari_barl._widget import DISAGREEMENT_LAYER, PREDICTION_LAYER

    from .conftest import paint_slice, set_tiny_training

    viewer, w, truth_path = user
    truth = _truth(truth_path)
    case = w.current_case
    slices = (3, 7, 11, 15, 19)
    for z in slices:
        w.go_to(case, z)
        paint_slice(w.labels_layer, z, truth[z])
    w.save_now()
    set_tiny_training(w)
    w.training.train_btn.click()
    qtbot.waitUntil(
        lambda: DISAGREEMENT_LAYER in viewer.layers and not w.is_busy(), timeout=240_000
    )
    img = viewer.layers[case]
    dis, pred = viewer.layers[DISAGREEMENT_LAYER], viewer.layers[PREDICTION_LAYER]
    assert img.visible and pred.visible and dis.visible
    np.testing.assert_allclose(dis.scale, img.scale)
    assert dis.colorbar.visible, "the disagreement map needs a colour bar"
    needs = viewer.layers[NEEDS_HUMAN_LAYER]
    assert not needs.visible or needs.contour > 0, "a filled magenta layer hides the result"
    assert viewer.scale_bar.visible and all(str(u) == "millimeter" for u in img.units)

    ws = w.workspace
    v1 = ws.current_version()
    assert v1.id == "v1" and v1.parent is None
    # five annotated slices already give a frozen validation slice to compare versions on
    assert sum(len(z) for z in v1.validation_slices.values()) >= 1
    assert v1.val_dice is not None

    # a second run from scratch is not a child of the first
    w.training.train_btn.click()
    qtbot.waitUntil(lambda: ws.current_version().id == "v2" and not w.is_busy(), timeout=240_000)
    assert ws.current_version().parent is None

    # a cancelled run does not become the working model
    w.training.iterations.setValue(100_000)
    w.training.train_btn.click()
    qtbot.waitUntil(lambda: len(w.training.loss_plot.values) > 0, timeout=120_000)
    w.training.cancel_btn.click()
    qtbot.waitUntil(lambda: not w.is_busy(), timeout=120_000)
    assert ws.current_version().id == "v2" and len(ws.versions.versions) == 2
    assert "cancelled" in w.training.eta_label.text()


def test_closing_the_viewer_stops_training(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from .conftest import paint_slice, set_tiny_training

    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    img, truth_path = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    paint_slice(w.labels_layer, 5, _truth(truth_path)[5])
    set_tiny_training(w)
    w.training.iterations.setValue(100_000)
    w.training.train_btn.click()
    handle = w.runner.handle
    assert handle is not None and handle.is_running()
    viewer.close()
    qtbot.waitUntil(lambda: not handle.is_running(), timeout=60_000)
