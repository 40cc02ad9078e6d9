"""Issue 12: the dock's case list, suggestion list and review status line show the session's
``focused`` case ranking."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from barl_core.io.volume import Volume
from barl_core.workspace.session import Session

from .conftest import dock, open_workspace_via_dialog

pytestmark = pytest.mark.gui

SHAPE = (40, 24, 24)


def _workspace(folder) -> None:
    """Two predicted cases: one doubts a small class's border (slice 26), one only an empty end."""
    truth = np.zeros(SHAPE, np.uint8)
    truth[8:32, 4:16, 4:14] = 1
    truth[12:28, 18:21, 18:21] = 2
    s = Session.open(folder, ["background", "big", "small"])
    for name in ("confident", "uncertain"):
        s.add_volume(Volume(np.zeros(SHAPE, np.float32)), name)
        s.annotate_slice(name, 20, truth[20])
    confident = np.full(SHAPE, 0.01, np.float32)
    confident[2] = 0.9
    uncertain = np.full(SHAPE, 0.01, np.float32)
    uncertain[26, 17:22, 17:22] = 0.4
    s.workspace.set_prediction("confident", truth, confident)
    s.workspace.set_prediction("uncertain", truth, uncertain)
    s.workspace.close()


def test_case_list_and_suggestions_follow_the_focused_case_ranking(make_napari_viewer, tmp_path, monkeypatch):
    _workspace(tmp_path / "ws")
    viewer = make_napari_viewer(show=False)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    table = w.workspace_panel.case_table
    row = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    assert table.item(row["uncertain"], 2).text().startswith("#1")
    assert "slice 26" in table.item(row["uncertain"], 2).text()
    assert "small" in table.item(row["uncertain"], 3).text()
    assert table.item(row["confident"], 2).text().startswith("#2")

    table.cellClicked.emit(row["confident"], 0)  # open the lower-ranked case
    assert w.state.case == "confident"
    # the review status line gives the same place and reason as the case table (not the
    # cached mean disagreement, a different quantity: it made "confident" look the more
    # uncertain case, its empty end being disagreed on)
    status = w.review.status.text()
    assert status.startswith("confident: next " + table.item(row["confident"], 2).text() + " of 2")
    assert table.item(row["confident"], 3).text() in status and "disagreement" not in status
    items = [w.review.suggestions.item(i) for i in range(w.review.suggestions.count())]
    [other] = [it for it in items if it.data(Qt.UserRole)[0] == "uncertain"]
    assert "small" in other.text() and other.data(Qt.UserRole) == ("uncertain", 26)
    w.review.suggestions.itemClicked.emit(other)  # a click opens that case on its best slice
    assert w.state.case == "uncertain"
    assert round(viewer.dims.point[0]) == 26
    status = w.review.status.text()
    assert status.startswith("uncertain: next #1 (") and "slice 26" in status and "small" in status
    w.shutdown()
