"""Issue 15: a workspace another process holds opens read-only, and the dock says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .conftest import dock, open_workspace_via_dialog, phantom_files

pytestmark = pytest.mark.gui

#: A second app on the same folder: it creates the workspace, adds a case and holds the
#: lock until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from barl_core.workspace.session import Session

    session = Session.open(sys.argv[1])
    session.add_file(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def held_workspace(tmp_path):
    """A workspace folder with one case, held open by another process."""
    img, _ = phantom_files(tmp_path / "data")
    folder = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(img)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield folder, proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=60)


def _write_actions(w):
    q = w.quality.tabs
    return [
        w.workspace_panel.add_files_btn,
        w.workspace_panel.add_layers_btn,
        w.classes.add_class_btn,
        w.classes.remove_class_btn,
        w.annotation.mark_btn,
        w.annotation.unmark_btn,
        w.training.train_btn,
        w.review.predict_btn,
        w.review.predict_all_btn,
        q.accept_btn,
        q.reject_btn,
        q.revert_btn,
        q.rollback_btn,
        w.tools.fill_btn,
    ]


def test_a_held_workspace_opens_read_only_and_says_so(
    make_napari_viewer, monkeypatch, held_workspace
):
    import napari.utils.notifications as nt

    folder, holder = held_workspace
    shown = []
    monkeypatch.setattr(nt, "show_warning", lambda m: shown.append(("warning", m)))
    monkeypatch.setattr(nt, "show_error", lambda m: shown.append(("error", m)))
    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, folder)

    # it opened (to look), and the dock says why nothing can be changed
    assert w.state.session is not None and w.state.read_only
    banner = w.workspace_panel.read_only_banner
    assert banner.isVisibleTo(w) and "READ-ONLY" in banner.text()  # on top of the dock
    assert "read-only" in w.workspace_panel.ws_label.text()
    assert any(kind == "warning" and str(holder.pid) in m for kind, m in shown), shown
    assert w.state.case == "phantom0" and viewer.layers["phantom0"].visible
    assert not w.case_view.labels_layer.editable
    for button in _write_actions(w):
        assert not button.isEnabled(), button.text()
    # a write that slips through (a script, a key) is refused, nothing is saved
    w.annotation.mark_current_slice(True)
    assert w.state.workspace.annotated_slices("phantom0") == []
    assert any(kind == "error" and "read-only" in m for kind, m in shown), shown

    # once the other app has closed, opening the folder again gives a writable workspace
    holder.stdin.close()
    holder.wait(timeout=60)
    open_workspace_via_dialog(w, monkeypatch, folder)
    assert not w.state.read_only and banner.isHidden()
    assert w.case_view.labels_layer.editable
    assert w.training.train_btn.isEnabled() and w.annotation.mark_btn.isEnabled()
    w.annotation.mark_current_slice(True)
    assert len(w.state.workspace.annotated_slices("phantom0")) == 1
    w.shutdown()
