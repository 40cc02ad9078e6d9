"""The dock as a view over one evented state: panels follow it, none reaches into another."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from napari_barl._state import BarlState

from .conftest import add_files_via_dialog, dock, open_workspace_via_dialog, phantom_files

PLUGIN = Path(__file__).resolve().parents[2] / "napari_barl"


def test_state_emits_on_change_only():
    state, seen = BarlState(), []
    state.events.case.connect(seen.append)
    state.case = "a"
    state.case = "a"
    state.case = None
    assert seen == ["a", None]
    with pytest.raises(ValueError):
        BarlState(paint_mode="lasso")


def test_no_module_reaches_into_another_panels_privates():
    """``self.<panel>._x`` or ``self.w._x`` across modules is what the state replaces."""
    offenders = []
    for path in PLUGIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
                and node.value.attr in {"w", "quality", "tools", "training", "review", "ctx"}
            ):
                offenders.append(f"{path.name}:{node.lineno} self.{node.value.attr}.{node.attr}")
    assert offenders == []


@pytest.mark.gui
def test_panels_follow_the_state(make_napari_viewer, tmp_path, monkeypatch):
    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    assert w.state.session is not None and w.state.case is None
    img, _ = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    assert w.state.case == "phantom0"
    # label colours are the audit tables' colours (ITK-SNAP / Slicer show the same)
    from barl_core.workspace.audit import class_colors

    for k, rgb in enumerate(class_colors(w.workspace.num_classes)[1:], start=1):
        np.testing.assert_allclose(w.labels_layer.get_color(k)[:3], np.array(rgb) / 255, atol=1e-3)
    # the paint mode set on the state reaches the buttons, the canvas text and the saver
    w.state.paint_mode = "scribble"
    assert w.mode_scribble.isChecked() and w.sync.mode == "scribble"
    assert "scribble" in viewer.text_overlay.text
    w.mode_slice.click()
    assert w.state.paint_mode == "slice" and w.sync.mode == "slice"
    # a new working model shows in the versions table without the dock telling it
    run = w.workspace.models_dir / "r1"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    v = w.workspace.add_version(run / "model.pt", config={}, data_snapshot={}, parent=None)
    assert w.quality.tabs.version_table.rowCount() == 0
    w.state.model = v.id
    assert w.quality.tabs.version_table.rowCount() == 1
    w.shutdown()
