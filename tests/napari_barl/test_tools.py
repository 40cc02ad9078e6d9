"""Radiologist tools through the npe2 dock: window/level, fill between slices, paint-over, 3D."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active.interpolate import interpolate_between
from barl_core.evaluation.metrics import dice
from barl_core.io.volume import read_volume

from .conftest import paint_slice

pytestmark = pytest.mark.gui


def test_window_presets(user):
    from napari_barl._tools_panel import WINDOW_PRESETS

    viewer, w, _ = user
    box = w.tools.window_box
    i = next(k for k, p in enumerate(WINDOW_PRESETS) if p.name.startswith("CT soft"))
    box.activated.emit(i + 1)
    assert tuple(w.case_view.image_layer().contrast_limits) == pytest.approx((-160.0, 240.0))
    j = next(k for k, p in enumerate(WINDOW_PRESETS) if p.name.startswith("MR"))
    box.activated.emit(j + 1)
    data = np.asarray(w.case_view.image_layer().data)
    lo, hi = w.case_view.image_layer().contrast_limits
    assert data.min() <= lo < hi <= data.max()


def test_fill_between_slices_is_a_proposal_to_accept(user):
    from napari_barl._tools_panel import FILL_LAYER

    viewer, w, truth_path = user
    truth = (read_volume(truth_path).array > 0).astype(np.uint8)
    case = w.state.case
    for z in (4, 12):
        w.case_view.go_to(case, z)
        paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.go_to(case, 8)
    w.tools.fill_btn.click()
    fill = np.asarray(viewer.layers[FILL_LAYER].data)
    assert sorted(np.flatnonzero(fill.reshape(len(fill), -1).any(1))) == list(range(5, 12))
    assert w.state.workspace.annotated_slices(case) == [4, 12], "a proposal, not labels yet"
    assert len({tuple(str(u) for u in ly.units) for ly in viewer.layers}) == 1, "mm everywhere"
    # what the engine interpolates between the two slices, shown as drawn (its quality is
    # tested in tests/barl_core/active/test_interpolate.py)
    expected = interpolate_between(
        w.state.workspace.load_labels(case), 4, 12, spacing_yx=w.state.workspace.reference(case).spacing[1:]
    )
    for z in range(5, 12):
        np.testing.assert_array_equal(fill[z], expected[z])
    assert np.mean([dice(fill[z] == 1, truth[z] == 1) for z in range(5, 12)]) > 0.5
    w.tools.accept_fill_btn.click()
    assert FILL_LAYER not in viewer.layers
    assert w.state.workspace.annotated_slices(case) == list(range(4, 13))
    np.testing.assert_array_equal(w.state.workspace.load_labels(case)[8], fill[8])
    assert w.state.workspace.provenance.latest(case, 8).how == "accepted"


def test_paint_over_protects_other_classes_and_3d_view(user):
    viewer, w, _ = user
    w.classes.add_class("lesion")
    layer = w.case_view.labels_layer
    layer.data[6, 10:14, 10:14] = 2
    w.tools.protect.click()
    assert layer.preserve_labels
    layer.brush_size = 9
    layer.paint((6, 12, 12), 1)
    assert (layer.data[6, 10:14, 10:14] == 2).all() and layer.data[6, 12, 16] == 1
    w.tools.view3d_btn.click()
    assert viewer.dims.ndisplay == 3
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].max() > 0
    w.tools.view3d_btn.click()
    assert viewer.dims.ndisplay == 2


def test_linked_views_follow_and_move_the_viewer(user, qtbot):
    from qtpy.QtCore import QPoint, Qt

    from napari_barl._ortho import plane_image

    viewer, w, _ = user
    case = w.state.case
    w.case_view.go_to(case, 7)
    w.tools.ortho_btn.click()
    ortho = w.tools.ortho
    assert ortho is not None
    qtbot.waitUntil(ortho.isVisible, timeout=5000)
    nz = w.case_view.labels_layer.data.shape[0]
    z, y, x = ortho.voxel()
    assert z == 7 and ortho.coronal.cross == (nz - 1 - 7, x)
    # radiological: superior on top (the last z row of the array is the first row shown)
    img = np.asarray(w.case_view.image_layer().data)
    limits = tuple(w.case_view.image_layer().contrast_limits)
    shown = plane_image(img, "coronal", y, limits)
    np.testing.assert_array_equal(shown[0], plane_image(img[nz - 1 :], "coronal", y, limits)[0])
    np.testing.assert_array_equal(shown[-1], plane_image(img[:1], "coronal", y, limits)[0])
    # clicking row r of the coronal view moves the axial slice to z = nz - 1 - r
    view = ortho.coronal
    left, top_px, vw, vh = view._geometry()
    r = 4
    qtbot.mouseClick(
        view, Qt.LeftButton, pos=QPoint(int(left + vw * 5), int(top_px + (r + 0.5) * vh))
    )
    assert w.case_view.current_slice() == nz - 1 - r
    assert ortho.sagittal.cross[0] == r
    w.tools.ortho_btn.click()
    assert w.tools.ortho is None
