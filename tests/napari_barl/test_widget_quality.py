"""Issue 7 through the dock widget: proposals + keys, provenance/history, versions, advice, audit."""

from __future__ import annotations

import json
from dataclasses import asdict
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pytest
import torch
from napari.utils.key_bindings import coerce_keybinding
from qtpy.QtCore import Qt

from barl_core.active.proposals import NEEDS_HUMAN
from barl_core.inference.agreement import predict_with_agreement
from barl_core.inference.model import load_model
from barl_core.networks.unet import BiBranchNet, NetworkConfig
from barl_core.training.checkpoint import save_checkpoint
from barl_core.workspace.audit import final_mask
from barl_core.workspace.layout import Workspace
from barl_core.workspace.provenance import slice_dice
from napari_barl._quality import NEEDS_HUMAN_LAYER, PROPOSAL_LAYER
from napari_barl._widget import BarlWidget

pytestmark = pytest.mark.gui
PAINTED = (0, 2, 6, 10, 12, 16, 20)


def _tiny_checkpoint(path, seed, class_names):
    torch.manual_seed(seed)
    cfg = NetworkConfig(num_classes=len(class_names), base_channels=4, depth=2, proj_dim=8)
    ckpt = {
        "method": "barl",
        "n_branches": 2,
        "model_state": BiBranchNet(cfg).state_dict(),
        "network": asdict(cfg),
        "class_names": list(class_names),
        "ignore_index": 255,
        "normalization": None,
        "norm_config": {
            "lower_percentile": 0.5,
            "upper_percentile": 99.5,
            "mode": "percentile_zscore",
        },
        "target_spacing": None,
        "patch_size": [16, 32, 32],
        "iteration": 1,
        "total_iterations": 1,
        "config": {"iterations": 1, "seed": seed},
        "optimizer_state": None,
        "scaler_state": None,
        "rng_state": None,
        "history": [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, ckpt)


def _press(viewer, key):
    viewer.keymap[coerce_keybinding(key)](viewer)


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_proposals_history_versions_audit(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-barl", "phantom_small")
    truth = np.asarray(viewer.layers["ground truth"].data)
    w = BarlWidget(viewer)
    viewer.window.add_dock_widget(w)
    ws = w.workspace_panel.open_workspace(tmp_path / "ws")
    [case] = w.workspace_panel.add_viewer_images()
    for z in PAINTED:
        w.case_view.labels_layer.data[z] = truth[z]
    w.case_view.sync.annotated |= set(PAINTED)
    w.case_view.sync.schedule()
    w.case_view.save_now()

    # two versions from tiny checkpoints; training labels hold the frozen validation out
    train_dir, snap = w.quality.prepare_training()
    val = snap["validation_slices"][case]
    assert val == [12, 16]  # hash rule after the first four (0, 2, 6, 10) training slices
    from barl_core.io.volume import read_volume

    assert (read_volume(train_dir / f"{case}.nii.gz").array[val] == 255).all()
    paths = [
        _tiny_checkpoint(ws.models_dir / f"run-{s}" / "model.pt", s, ws.class_names) for s in (0, 1)
    ]
    preds = {}
    for vid, p in zip(("v1", "v2"), paths, strict=True):
        ws.add_version(p, config={"seed": vid}, **snap)
        preds[vid] = predict_with_agreement(load_model(p, "cpu"), ws.load_image(case))
        ws.set_prediction(case, preds[vid].labels, preds[vid].disagreement, version=vid)
        w.quality.evaluate_version(vid)
    assert ws.versions.get("v2").parent == "v1"
    m = ws.versions.get("v1").metrics
    expected = np.mean([slice_dice(preds["v1"].labels[z], truth[z], 4) for z in val])
    assert m["n_slices"] == 2 and m["mean_dice"] == pytest.approx(expected)
    assert w.quality.tabs.version_table.rowCount() == 2

    # proposals: confident on the left half only (a controlled confidence map)
    pred = preds["v2"].labels
    conf = np.full(pred.shape, 0.3, np.float16)
    conf[:, :, :24] = 0.97
    ws.set_prediction(case, pred, preds["v2"].disagreement, confidence=conf, version="v2")
    w.predictions.show()
    prop_layer, needs = viewer.layers[PROPOSAL_LAYER], viewer.layers[NEEDS_HUMAN_LAYER]
    assert needs.data[22, :, 30].all() and not needs.data[22, :, 5].any()
    assert not needs.data[10].any() and not prop_layer.data[10].any()  # annotated: no proposal
    w.case_view.go_to(case, 22)
    _press(viewer, "Shift-A")
    np.testing.assert_array_equal(w.case_view.labels_layer.data[22], pred[22])
    ws2 = Workspace.open(tmp_path / "ws")
    assert 22 in ws2.annotated_slices(case) and 22 in ws2.accepted_slices(case)
    ev = ws2.provenance.latest(case, 22)
    assert ev.how == "accepted" and ev.model_version == "v2" and ev.version == 1
    stored = ws2.provenance.load_proposal(case, 22, 1)
    assert (stored[:, 24:] == NEEDS_HUMAN).all() and (stored[:, :24] == pred[22, :, :24]).all()
    assert 22 in w.annotation.minimap.accepted and not viewer.layers[PROPOSAL_LAYER].data[22].any()

    # the human edits the accepted slice: recorded with the Dice to the proposal
    w.case_view.labels_layer.data[22] = truth[22]
    w.case_view.sync.schedule()
    w.case_view.save_now()
    ev = Workspace.open(tmp_path / "ws").provenance.latest(case, 22)
    assert ev.how == "edited-from-proposal"
    # against the slice as accepted (open voxels filled with the prediction's guess)
    assert ev.dice_to_proposal == pytest.approx(slice_dice(pred[22], truth[22], 4))

    # reject the next slice: no proposal there any more
    w.case_view.go_to(case, 24)
    qtbot.mouseClick(w.quality.tabs.reject_btn, Qt.LeftButton)
    assert 24 in Workspace.open(tmp_path / "ws").provenance.rejected(case)
    assert not viewer.layers[NEEDS_HUMAN_LAYER].data[24].any()

    # history: revert slice 22 to v1 (the accepted proposal), survives a reopen
    w.case_view.go_to(case, 22)
    hist = w.quality.tabs.history_list
    assert hist.count() == 2
    hist.setCurrentRow(0)
    qtbot.mouseClick(w.quality.tabs.revert_btn, Qt.LeftButton)
    np.testing.assert_array_equal(w.case_view.labels_layer.data[22], pred[22])
    np.testing.assert_array_equal(Workspace.open(tmp_path / "ws").load_labels(case)[22], pred[22])

    # compare two versions on the current slice
    res = w.quality.compare("v1", "v2")
    assert res["dice"] == pytest.approx(
        slice_dice(preds["v1"].labels[22], preds["v2"].labels[22], 4)
    )
    assert {"version v1 (cyan)", "version v2 (yellow)"} <= {ly.name for ly in viewer.layers}
    assert "Dice" in w.quality.tabs.compare_label.text()

    # roll back to v1 through the table and predict: v1's weights predict
    assert not np.array_equal(preds["v1"].labels, preds["v2"].labels)
    w.quality.tabs.version_table.selectRow(0)
    qtbot.mouseClick(w.quality.tabs.rollback_btn, Qt.LeftButton)
    assert ws.current_model_path().resolve() == paths[0].resolve()
    qtbot.mouseClick(w.review.predict_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=120_000)
    np.testing.assert_array_equal(ws.load_prediction(case), preds["v1"].labels)
    assert ws.load_confidence(case) is not None
    assert ws.record(case).prediction_model == ws.versions.get("v1").path

    # advice, then the audit bundle read back with independent readers
    qtbot.mouseClick(w.quality.tabs.advice_btn, Qt.LeftButton)
    assert w.quality.tabs.advice_label.text().strip()
    [b] = w.quality.export_audit(tmp_path / "audit")
    img = nib.load(b.mask)
    mask = np.asarray(img.dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(mask, final_mask(ws.load_labels(case), preds["v1"].labels))
    np.testing.assert_allclose(
        np.abs(np.diag(img.affine))[:3], viewer.layers["CBCT phantom"].scale[::-1], atol=1e-5
    )
    snap_rows = [ln.split() for ln in b.itksnap.read_text().splitlines() if not ln.startswith("#")]
    assert [int(r[0]) for r in snap_rows] == [0, 1, 2, 3] and snap_rows[3][-1] == '"lesion"'
    ctbl = [ln.split() for ln in b.ctbl.read_text().splitlines() if not ln.startswith("#")]
    assert [r[1] for r in ctbl] == ws.class_names
    rep = json.loads(b.report_json.read_text())
    hows = {s["z"]: s["how"] for s in rep["annotated_slices"]}
    assert hows[22] == "reverted" and hows[0] == "drawn"
    assert rep["model_version"]["id"] == "v1" and rep["validation_metrics"]["n_slices"] == 2
    assert (b.folder / rep["files"]["model"]).exists()
    parser = _Html()
    parser.feed(b.report_html.read_text())
    assert "table" in parser.tags and any("barl predict" in t for t in parser.text)
    w.shutdown()
