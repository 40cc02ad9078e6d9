"""The whole radiologist loop through the dock widget: paint, train, review, export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtCore import Qt

from barl_core.workspace.layout import Workspace
from napari_barl._prediction_view import DISAGREEMENT_LAYER, PREDICTION_LAYER
from napari_barl._widget import BarlWidget
from napari_barl.testing import paint_slice

from .conftest import set_tiny_training

pytestmark = pytest.mark.gui


def _ras_affine(spacing_zyx, origin_xyz, direction) -> np.ndarray:
    """NIfTI affine expected for an ITK (LPS) geometry, written out independently."""
    d = np.asarray(direction, float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = d @ np.diag(np.asarray(spacing_zyx, float)[::-1])
    m[:3, 3] = origin_xyz
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ m


@pytest.mark.slow  # a real training run: PyQt5 pass only (scripts/test.sh)
def test_label_train_review_export(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-barl", "phantom_small")
    image_layer, truth = viewer.layers["CBCT phantom"], viewer.layers["ground truth"]
    source = image_layer.metadata["barl_geometry"]
    w = BarlWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.workspace_panel.open_workspace(tmp_path / "ws")
    [case] = w.workspace_panel.add_viewer_images()
    assert w.state.workspace.class_names == ["background", "bone", "tooth", "lesion"]
    assert w.classes.class_list.count() == 4

    # paint two slices (copying the ground truth in, as a user would with the brush)
    for z in (10, 21):
        w.case_view.go_to(case, z)
        assert viewer.dims.current_step[0] == z
        paint_slice(w.case_view.labels_layer, z, np.asarray(truth.data[z]))
    qtbot.waitUntil(lambda: not w.case_view.sync.dirty, timeout=5000)
    assert Workspace.open(tmp_path / "ws").annotated_slices(case) == [10, 21]

    # a tiny model through the widget's own controls
    set_tiny_training(w)
    tp = w.training
    qtbot.mouseClick(tp.train_btn, Qt.LeftButton)
    assert w.jobs.is_busy() and tp.cancel_btn.isEnabled()
    qtbot.waitUntil(
        lambda: DISAGREEMENT_LAYER in viewer.layers and not w.jobs.is_busy(), timeout=240_000
    )

    pred, dis = viewer.layers[PREDICTION_LAYER], viewer.layers[DISAGREEMENT_LAYER]
    assert pred.data.shape == image_layer.data.shape
    assert dis.colormap.name == "inferno" and dis.blending == "additive"
    np.testing.assert_allclose(dis.scale, image_layer.scale)
    assert tp.progress.value() == 100
    assert w.state.workspace.current_model_path().exists()
    assert w.state.workspace.case_state(case) == "predicted"
    assert w.workspace_panel.case_table.item(0, 2).text() != ""
    # the run became model version v1 with its data snapshot, and proposals are shown
    v = w.state.workspace.current_version()
    assert v.id == "v1" and v.training_slices == {case: [10, 21]} and v.config["iterations"] == 4
    assert w.state.workspace.version_prediction_path("v1", case).exists()
    assert "proposal" in viewer.layers and w.state.workspace.load_confidence(case) is not None

    # click the top suggestion: the viewer moves to that slice
    lst = w.review.suggestions
    assert lst.count() >= 1
    item = lst.item(min(1, lst.count() - 1))
    target = item.data(Qt.UserRole)[1]
    assert target not in (10, 21)  # never suggests an annotated slice
    # each slice suggestion says why in one line, and the minimap draws the ranked quantity
    top = w.state.session.suggest_slices(case, top_k=5, min_gap=2)
    assert lst.item(0).toolTip() == top[0].reason != ""
    assert w.annotation.minimap.profile[top[0].index] == pytest.approx(top[0].uncertainty)
    w.case_view.go_to(case, 0)
    rect = lst.visualItemRect(item)
    qtbot.mouseClick(lst.viewport(), Qt.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] == target

    # accept the prediction on that slice: it becomes annotated (after a tiny run little
    # is confident, so the dock asks first; the user says yes)
    from qtpy.QtWidgets import QMessageBox

    asked = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        staticmethod(lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes),
    )
    w.annotation.accept_btn.click()
    assert target in Workspace.open(tmp_path / "ws").annotated_slices(case)

    # export both, read back with nibabel, compare with the source geometry
    out = tmp_path / "export"
    written = w.export_panel.export(out, "prediction") + w.export_panel.export(out, "labels")
    assert [p.name for p in written] == [f"{case}_prediction.nii.gz", f"{case}_labels.nii.gz"]
    expected = _ras_affine(source["spacing"], source["origin"], source["direction"])
    for p in written:
        img = nib.load(p)
        np.testing.assert_allclose(img.affine, expected, atol=1e-4)
        assert img.shape == image_layer.data.shape[::-1]
    exported = np.asarray(nib.load(written[0]).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(exported, pred.data)
    w.shutdown()
