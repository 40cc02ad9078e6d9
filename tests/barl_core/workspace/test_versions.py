"""Model versions: the registry, rollback, comparing two versions."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.workspace.layout import Workspace
from barl_core.workspace.versions import compare_slices


def test_versions_and_rollback(ws1, tmp_path):
    for i in (1, 2):
        p = ws1.models_dir / f"r{i}" / "model.pt"
        p.parent.mkdir()
        p.write_bytes(b"x")
        v = ws1.add_version(p, config={"iterations": i}, data_snapshot={"c1": list(range(i))})
    assert v.id == "v2" and v.parent == "v1"
    ws1.versions.set_metrics("v1", {"mean_dice": 0.5})
    ws1.versions.set_metrics("v2", {"mean_dice": 0.7})
    w2 = Workspace.open(tmp_path / "ws")
    assert w2.versions.learning_curve() == [("v1", 1, 0.5), ("v2", 2, 0.7)]
    assert w2.current_version().id == "v2"
    assert w2.rollback("v1").name == "model.pt"
    assert Workspace.open(tmp_path / "ws").current_version().id == "v1"
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 1
    assert compare_slices(a, b)["changed_fraction"] == pytest.approx(1 / 16)
