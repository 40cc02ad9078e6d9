"""``python -m napari_barl.launch`` opens the phantom in a workspace with the widget docked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_open_app_docks_widget_with_phantom(tmp_path, qtbot):
    from napari_barl.launch import open_app

    viewer, widget = open_app(tmp_path / "ws", show=False)
    try:
        assert widget.workspace is not None and widget.workspace.cases == ["CBCT_phantom"]
        assert widget.current_case == "CBCT_phantom"
        assert "CBCT_phantom labels" in viewer.layers
        assert widget.workspace.class_names[0] == "background"
        # reopening the same workspace does not duplicate the case
        viewer.close()
        viewer, widget = open_app(tmp_path / "ws", show=False)
        assert widget.workspace.cases == ["CBCT_phantom"]
        assert "CBCT_phantom" in viewer.layers
    finally:
        widget.shutdown()
        viewer.close()
