"""The audit bundle, read back with independent readers."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import nibabel as nib
import numpy as np

from barl_core.workspace.audit import export_bundle, final_mask


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)

def test_audit_bundle_readable_by_independent_readers(ws1, tmp_path):
    lab = ws1.load_labels("c1")
    lab[2] = 1
    ws1.save_labels("c1", lab)
    pred = np.zeros((10, 12, 14), np.uint8)
    pred[5:, 3:6, 3:6] = 2
    ws1.set_prediction("c1", pred, np.full(pred.shape, 0.1, np.float32))
    b = export_bundle(ws1, "c1", tmp_path / "audit")
    mask = np.asarray(nib.load(b.mask).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(mask, final_mask(lab, pred))
    assert (mask[2] == 1).all() and (mask[6, 3:6, 3:6] == 2).all()
    np.testing.assert_allclose(np.abs(np.diag(nib.load(b.mask).affine))[:3], [0.5, 1.0, 2.0])
    rows = [ln.split() for ln in b.itksnap.read_text().splitlines() if not ln.startswith("#")]
    assert (
        [int(r[0]) for r in rows] == [0, 1, 2] and rows[2][-1] == '"lesion"' and len(rows[1]) == 8
    )
    ct = [ln.split() for ln in b.ctbl.read_text().splitlines() if not ln.startswith("#")]
    assert [(int(r[0]), r[1]) for r in ct] == [(0, "background"), (1, "tooth"), (2, "lesion")]
    assert ct[1][2:5] == rows[1][1:4]  # same colours in both tables
    rep = json.loads(b.report_json.read_text())
    assert [s["z"] for s in rep["annotated_slices"]] == [2]
    assert rep["annotated_slices"][0]["how"] == "drawn"
    p = _Text()
    p.feed(b.report_html.read_text())
    assert "table" in p.tags and any("drawn" in t for t in p.text)
