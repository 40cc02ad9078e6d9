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


def test_no_module_reaches_into_another_objects_privates():
    """A private name is read only on ``self``/``cls``: panels share the state, not internals.

    ``self.<panel>._x``, ``self.w._x`` or ``other._x`` across objects is what the evented
    state replaces.
    """
    offenders = []
    for path in sorted(PLUGIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


def _plugin_imports() -> dict[str, set[str]]:
    """Plugin module -> the plugin modules it imports (lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in PLUGIN.glob("*.py"):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                elif node.module and node.module.startswith("napari_barl."):
                    names = [node.module.split(".")[1]]
                else:
                    continue
                deps.update(n.split(".")[0] for n in names)
    return graph


def test_plugin_modules_import_without_cycles():
    graph = _plugin_imports()
    assert graph["_widget"] >= {"_workspace_panel", "_case_view", "_jobs"}  # the test sees imports
    done: set[str] = set()

    def visit(mod: str, path: tuple[str, ...]) -> None:
        assert mod not in path, f"import cycle: {' -> '.join(path + (mod,))}"
        if mod in done:
            return
        for dep in graph.get(mod, ()):
            visit(dep, path + (mod,))
        done.add(mod)

    for mod in graph:
        visit(mod, ())


def test_the_dock_is_composition():
    """Issue 13: the dock widget composes panels (about 100 lines), the work is theirs."""
    lines = (PLUGIN / "_widget.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120


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

    for k, rgb in enumerate(class_colors(w.state.workspace.num_classes)[1:], start=1):
        np.testing.assert_allclose(w.case_view.labels_layer.get_color(k)[:3], np.array(rgb) / 255, atol=1e-3)
    # the paint mode set on the state reaches the buttons, the canvas text and the saver
    w.state.paint_mode = "scribble"
    assert w.annotation.mode_scribble.isChecked() and w.case_view.sync.mode == "scribble"
    assert "scribble" in viewer.text_overlay.text
    w.annotation.mode_slice.click()
    assert w.state.paint_mode == "slice" and w.case_view.sync.mode == "slice"
    # a new working model shows in the versions table without the dock telling it
    run = w.state.workspace.models_dir / "r1"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    v = w.state.workspace.add_version(run / "model.pt", config={}, data_snapshot={}, parent=None)
    assert w.quality.tabs.version_table.rowCount() == 0
    w.state.model = v.id
    assert w.quality.tabs.version_table.rowCount() == 1
    w.shutdown()
