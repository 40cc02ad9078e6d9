"""The Left Atrium h5 reader (UA-MT layout): axes, list order, the GPU protocol's patch."""

from __future__ import annotations

import numpy as np
import pytest


def test_la_h5_loader_transposes_to_zyx_and_keeps_list_order(write_la, tmp_path):
    from benchmarks.la_h5 import GPU_PROTOCOL, find_la_layout, load_la_cases

    cases_dir = write_la(tmp_path, 3, 2)
    for root in (tmp_path, cases_dir):  # either the list folder or the case folder
        layout = find_la_layout(root)
        assert layout.case_root == cases_dir
    cases, train, test = load_la_cases(tmp_path)
    assert train == ["CASE00", "CASE01", "CASE02"] and test == ["CASE03", "CASE04"]
    c = cases["CASE01"]
    assert c.image.shape == (16, 20, 24) and c.truth.shape == (16, 20, 24)  # (z, y, x)
    assert c.image.array[2, 1, 0] == pytest.approx(101.0)
    assert c.truth.dtype == np.uint8 and set(np.unique(c.truth)) == {0, 1}
    assert c.image.spacing == (1.0, 1.0, 1.0)
    assert GPU_PROTOCOL.patch == (80, 112, 112)  # literature's 112x112x80 (x, y, z)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        find_la_layout(tmp_path / "empty" / "nowhere")
