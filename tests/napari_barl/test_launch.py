"""``python -m napari_barl.launch`` opens the phantom in a workspace with the widget docked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_open_app_docks_widget_with_phantom(tmp_path, qtbot):
    from napari_barl.launch import open_app

    viewer, widget = open_app(tmp_path / "ws", show=False)
    try:
        assert widget.state.workspace is not None and widget.state.workspace.cases == ["CBCT_phantom"]
        assert widget.state.case == "CBCT_phantom"
        assert "CBCT_phantom labels" in viewer.layers
        assert widget.state.workspace.class_names[0] == "background"
        # reopening the same workspace does not duplicate the case
        viewer.close()
        viewer, widget = open_app(tmp_path / "ws", show=False)
        assert widget.state.workspace.cases == ["CBCT_phantom"]
        assert "CBCT_phantom" in viewer.layers
    finally:
        widget.shutdown()
        viewer.close()


@pytest.mark.parametrize("chosen", [None, "pyqt5"])
def test_launcher_prefers_qt6_unless_a_binding_is_chosen(chosen):
    """Napari warns at every start under PyQt5: the launcher takes PyQt6 when installed."""
    import importlib.util
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "QT_API"}
    if chosen:
        env["QT_API"] = chosen
    code = "from napari_barl.launch import prefer_qt6; print(prefer_qt6())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    has_qt6 = importlib.util.find_spec("PyQt6") is not None
    assert out == (chosen or ("pyqt6" if has_qt6 else "None"))
