"""Issue 15: what a radiologist hits, driven the user's way (npe2 dock, files through the plugin)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import add_files_via_dialog, dock, open_workspace_via_dialog, phantom_files

pytestmark = pytest.mark.gui


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
    w.workspace_panel.case_table.cellClicked.emit(1, 0)
    assert w.state.case == "phantom1"
    visible = [ly.name for ly in _image_layers(viewer) if ly.visible]
    assert visible == ["phantom1"]
    w.workspace_panel.case_table.cellClicked.emit(0, 0)
    assert [ly.name for ly in _image_layers(viewer) if ly.visible] == ["phantom0"]


def _truth(path):
    from barl_core.io.volume import read_volume

    return (read_volume(path).array > 0).astype(np.uint8)  # one foreground class


@pytest.mark.slow  # three real training runs: PyQt5 pass only (scripts/test.sh)
def test_add_files_paint_train_gives_readable_result(user, qtbot):
    """Issue 15 "Done when": Add files, paint, train; and versions book-kept honestly."""
    from napari_barl._prediction_view import DISAGREEMENT_LAYER, PREDICTION_LAYER
    from napari_barl._quality import NEEDS_HUMAN_LAYER

    from .conftest import paint_slice, set_tiny_training

    viewer, w, truth_path = user
    truth = _truth(truth_path)
    case = w.state.case
    slices = (3, 7, 11, 15, 19)
    for z in slices:
        w.case_view.go_to(case, z)
        paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.save_now()
    set_tiny_training(w)
    w.training.train_btn.click()
    qtbot.waitUntil(
        lambda: DISAGREEMENT_LAYER in viewer.layers and not w.jobs.is_busy(), timeout=240_000
    )
    img = viewer.layers[case]
    dis, pred = viewer.layers[DISAGREEMENT_LAYER], viewer.layers[PREDICTION_LAYER]
    assert img.visible and pred.visible and dis.visible
    np.testing.assert_allclose(dis.scale, img.scale)
    assert dis.colorbar.visible, "the disagreement map needs a colour bar"
    needs = viewer.layers[NEEDS_HUMAN_LAYER]
    assert not needs.visible or needs.contour > 0, "a filled magenta layer hides the result"
    assert viewer.scale_bar.visible and all(str(u) == "millimeter" for u in img.units)

    ws = w.state.workspace
    v1 = ws.current_version()
    assert v1.id == "v1" and v1.parent is None
    # five annotated slices already give a frozen validation slice to compare versions on
    assert sum(len(z) for z in v1.validation_slices.values()) >= 1
    assert v1.val_dice is not None

    # a second run from scratch is not a child of the first
    w.training.iterations.setValue(2)
    w.training.predict_after.setChecked(False)
    w.training.train_btn.click()
    qtbot.waitUntil(lambda: ws.current_version().id == "v2" and not w.jobs.is_busy(), timeout=240_000)
    assert ws.current_version().parent is None

    # a cancelled run does not become the working model
    w.training.iterations.setValue(100_000)
    w.training.train_btn.click()
    qtbot.waitUntil(lambda: len(w.training.loss_plot.values) > 0, timeout=120_000)
    w.training.cancel_btn.click()
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=120_000)
    assert ws.current_version().id == "v2" and len(ws.versions.versions) == 2
    assert "cancelled" in w.training.eta_label.text()


def test_closing_the_viewer_stops_training(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from .conftest import paint_slice, set_tiny_training

    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    img, truth_path = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    paint_slice(w.case_view.labels_layer, 5, _truth(truth_path)[5])
    set_tiny_training(w)
    w.training.iterations.setValue(100_000)
    w.training.train_btn.click()
    handle = w.jobs.runner.handle
    assert handle is not None and handle.is_running()
    viewer.close()
    qtbot.waitUntil(lambda: not handle.is_running(), timeout=60_000)


def _synthetic_prediction(w, truth, confident_cols):
    """A stored prediction whose branches agree confidently only on the first columns."""
    ws, case = w.state.workspace, w.state.case
    conf = np.full(truth.shape, 0.3, np.float16)
    conf[:, :, :confident_cols] = 0.97
    dis = np.random.default_rng(0).random(truth.shape).astype(np.float32)
    ws.set_prediction(case, truth, dis, confidence=conf, version=None)
    w.predictions.show()


def test_accept_asks_below_coverage_and_edits_count(user, monkeypatch):
    from napari.utils.key_bindings import coerce_keybinding
    from qtpy.QtWidgets import QMessageBox

    from barl_core.workspace.provenance import slice_dice

    viewer, w, truth_path = user
    truth = _truth(truth_path)
    _synthetic_prediction(w, truth, confident_cols=8)  # 20% of the slice is confident
    case, z = w.state.case, 12
    asked = []

    def answer(reply):
        def question(*args, **kwargs):
            asked.append(args[2])
            return reply

        monkeypatch.setattr(QMessageBox, "question", staticmethod(question))

    w.case_view.go_to(case, z)
    answer(QMessageBox.No)
    viewer.keymap[coerce_keybinding("Shift-A")](viewer)
    assert asked and "20%" in asked[-1]
    assert z not in w.state.workspace.annotated_slices(case), "refused: the user said no"
    answer(QMessageBox.Yes)
    viewer.keymap[coerce_keybinding("Shift-A")](viewer)
    assert z in w.state.workspace.annotated_slices(case)
    accepted = w.state.workspace.load_labels(case)[z].copy()

    # the user corrects voxels the proposal had left open: that is a change
    edited = accepted.copy()
    edited[:, 20:] = 1 - edited[:, 20:]
    w.case_view.labels_layer.data[z] = edited
    w.case_view.sync.schedule()
    w.case_view.save_now()
    ev = w.state.workspace.provenance.latest(case, z)
    assert ev.how == "edited-from-proposal"
    assert ev.dice_to_proposal == pytest.approx(slice_dice(accepted, edited, 2))
    assert ev.dice_to_proposal < 0.99
    # slice edits are "#K" in the history: "vN" names model versions
    w.quality.refresh_history()
    texts = [w.quality.tabs.history_list.item(i).text() for i in range(2)]
    assert texts[0].startswith("#1") and texts[1].startswith("#2")


def test_compare_draws_two_distinct_outlines(user):
    from napari_barl._quality import NEEDS_HUMAN_LAYER

    viewer, w, truth_path = user
    truth = _truth(truth_path)
    ws, case = w.state.workspace, w.state.case
    for vid, shift in (("v1", 0), ("v2", 2)):
        run = ws.models_dir / vid
        run.mkdir()
        (run / "model.pt").write_bytes(b"")
        ws.add_version(run / "model.pt", config={}, data_snapshot={}, parent=None)
        ws.set_prediction(case, np.roll(truth, shift, axis=2), version=vid)
    w.predictions.show()
    w.case_view.go_to(case, 12)
    w.quality.compare("v1", "v2")
    a, b = (ly for ly in viewer.layers if ly.name.startswith("version "))
    assert a.contour > 0 and b.contour > 0
    assert not np.allclose(a.get_color(1), b.get_color(1)), "two versions, two colours"
    names = [ly.name for ly in viewer.layers]
    if NEEDS_HUMAN_LAYER in names:
        assert names.index(a.name) > names.index(NEEDS_HUMAN_LAYER)


def test_scribble_mode_keeps_unpainted_unknown_and_erasing_unannotates(user, qtbot):
    from barl_core.data.labels import IGNORE_INDEX

    viewer, w, _ = user
    case = w.state.case
    layer = w.case_view.labels_layer
    # the mode is on show, in the dock and on the canvas
    assert w.annotation.mode_slice.isChecked() and "background" in w.annotation.mode_label.text()
    assert viewer.text_overlay.visible and "full-slice" in viewer.text_overlay.text
    w.annotation.mode_scribble.click()
    assert "scribble" in viewer.text_overlay.text and "unknown" in w.annotation.mode_label.text()

    w.case_view.go_to(case, 6)
    w.classes.class_list.setCurrentRow(1)
    layer.brush_size = 3
    layer.paint((6, 20, 20), layer.selected_label)
    w.classes.class_list.setCurrentRow(0)  # background, painted explicitly
    layer.paint((6, 5, 5), layer.selected_label)
    w.case_view.save_now()
    lab = w.state.workspace.load_labels(case)
    assert lab[6, 20, 20] == 1 and lab[6, 5, 5] == 0
    assert (lab[6] == IGNORE_INDEX).mean() > 0.9, "unpainted voxels stay unknown"
    assert 6 in w.state.workspace.annotated_slices(case)

    # full-slice mode: one dab makes the slice count whole; erasing it un-annotates
    w.annotation.mode_slice.click()
    w.classes.class_list.setCurrentRow(1)
    w.case_view.go_to(case, 9)
    layer.paint((9, 20, 20), 1)
    w.case_view.save_now()
    lab = w.state.workspace.load_labels(case)
    assert (lab[9] != IGNORE_INDEX).all() and 9 in w.state.workspace.annotated_slices(case)
    layer.paint((9, 20, 20), 0)  # the eraser
    w.case_view.save_now()
    assert 9 not in w.state.workspace.annotated_slices(case)
    assert (w.state.workspace.load_labels(case)[9] == IGNORE_INDEX).all()
    # the scribbled slice survives a reopen as scribbles
    w.workspace_panel.case_table.cellClicked.emit(0, 0)
    assert 6 in w.case_view.sync.partial


def test_writer_keeps_the_geometry_of_new_labels(make_napari_viewer, tmp_path, monkeypatch):
    """Napari's "New Labels" on an oblique, 3 mm scan, saved with the plugin's writer."""
    import nibabel as nib

    from barl_core.io.volume import Volume, write_volume

    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    c, s = np.cos(0.3), np.sin(0.3)
    vol = Volume(
        np.random.default_rng(0).normal(size=(6, 10, 8)).astype(np.float32),
        spacing=(3.0, 0.7, 0.6),
        origin=(-20.0, 11.0, 5.0),
        direction=(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0),
    )
    src = write_volume(vol, tmp_path / "ct.nii.gz")
    add_files_via_dialog(w, monkeypatch, [src])
    viewer.layers.selection.active = viewer.layers["ct"]
    viewer._new_labels()
    new = viewer.layers[-1]
    new.data[2, 3, 3] = 1
    viewer.layers.selection.active = new
    [out] = viewer.layers.save(str(tmp_path / "mask.nii.gz"), selected=True, plugin="napari-barl")
    np.testing.assert_allclose(nib.load(out).affine, nib.load(src).affine, atol=1e-4)


def test_dock_layout_settings_and_export(make_napari_viewer, tmp_path, monkeypatch):
    import nibabel as nib
    from qtpy.QtWidgets import (
        QAbstractButton,
        QComboBox,
        QDoubleSpinBox,
        QSpinBox,
        QTableWidget,
    )

    from barl_core.workspace.audit import final_mask

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    img, truth_path = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    # Train is visible without scrolling
    top = w.training.train_btn.mapTo(w.scroll.widget(), w.training.train_btn.rect().topLeft())
    assert top.y() + w.training.train_btn.height() <= w.scroll.viewport().height()
    # nothing is clipped: the content fits the dock's width, every control at least as
    # wide as it needs, columns readable
    assert w.scroll.widget().width() <= w.scroll.viewport().width()
    assert w.scroll.widget().width() >= w.scroll.widget().minimumSizeHint().width()
    for kind in (QAbstractButton, QComboBox, QSpinBox, QDoubleSpinBox):
        for ctl in w.findChildren(kind):
            if ctl.isVisible():
                assert ctl.width() >= ctl.minimumSizeHint().width(), ctl
    for table in w.findChildren(QTableWidget):
        header = table.horizontalHeader()
        for i in range(table.columnCount() - 1):
            assert header.sectionSize(i) >= header.sectionSizeHint(i)

    # settings survive a restart
    w.training.iterations.setValue(123)
    w.quality.tabs.threshold.setValue(0.75)
    w.annotation.mode_scribble.click()
    viewer.close()
    viewer2 = make_napari_viewer(show=True)
    w2 = dock(viewer2)
    assert w2.training.iterations.value() == 123
    assert w2.quality.tabs.threshold.value() == pytest.approx(0.75)
    assert w2.state.paint_mode == "scribble"

    # export: the final mask (your labels over the prediction), never the 255 marker
    w2.workspace_panel.open_workspace(tmp_path / "ws")
    w2.annotation.mode_slice.click()
    truth = _truth(truth_path)
    case = w2.state.case
    w2.case_view.labels_layer.data[10] = 1 - truth[10]  # the user's (different) slice wins
    w2.case_view.sync.schedule()
    w2.case_view.save_now()
    w2.state.workspace.set_prediction(case, truth)
    w2.export_panel.export_what.setCurrentIndex(0)
    monkeypatch.setattr(
        "qtpy.QtWidgets.QFileDialog.getExistingDirectory",
        staticmethod(lambda *a, **k: str(tmp_path / "out")),
    )
    w2.export_panel.export_btn.click()
    [final] = list((tmp_path / "out").glob("*_final.nii.gz"))
    got = np.asarray(nib.load(final).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(got, final_mask(w2.state.workspace.load_labels(case), truth))
    np.testing.assert_array_equal(got[10], 1 - truth[10])
    labels_only = w2.export_panel.export(tmp_path / "out", "labels")[0]
    assert np.asarray(nib.load(labels_only).dataobj).max() < 255
    w2.shutdown()


def test_threshold_fits_the_model_on_validation_slices(user):
    """A first model right wherever its branches agree at 0.7 gets proposals at 0.7, and says why."""
    from .conftest import paint_slice

    viewer, w, truth_path = user
    truth = _truth(truth_path)
    ws, case = w.state.workspace, w.state.case
    for z in (6, 8, 10, 12, 14, 16):
        w.case_view.go_to(case, z)
        paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.save_now()
    ws.validation.update({case: ws.annotated_slices(case)})
    val = ws.validation.validation_slices()[case]
    assert val
    conf = np.random.default_rng(1).random(truth.shape).astype(np.float16)
    pred = np.where(conf >= 0.7, truth, 1 - truth).astype(np.uint8)
    ws.set_prediction(case, pred, conf.astype(np.float32), confidence=conf)
    w.predictions.show()
    assert w.quality.tabs.threshold.value() == pytest.approx(0.9)
    cal = w.quality.calibrate()
    assert cal is not None and 0.7 <= cal.threshold <= 0.72
    assert w.quality.tabs.threshold.value() == pytest.approx(cal.threshold)
    assert "fitted" in w.quality.tabs.calibration_label.text()
    w.quality.tabs.adapt_threshold.setChecked(False)  # the user's own threshold stays
    w.quality.tabs.threshold.setValue(0.95)
    assert w.quality.calibrate() is None and w.quality.tabs.threshold.value() == 0.95
