"""Qt-free parts of issue 7: provenance/history, frozen validation, versions, proposals, advice, audit."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pytest

from barl_core.active.proposals import NEEDS_HUMAN, fill_proposal, gate, proposal_for_slice
from barl_core.data.labels import IGNORE_INDEX
from barl_core.inference.agreement import agreement_maps, predict_with_agreement
from barl_core.io.volume import Volume
from barl_core.workspace.advice import AdviceConfig, advise
from barl_core.workspace.audit import export_bundle, final_mask
from barl_core.workspace.layout import Workspace
from barl_core.workspace.provenance import slice_dice
from barl_core.workspace.validation import (
    FrozenValidation,
    evaluate,
    materialize_training_labels,
    slice_hash,
)
from barl_core.workspace.versions import compare_slices


@pytest.fixture
def ws(tmp_path, rng):
    w = Workspace.create(tmp_path / "ws", ["background", "tooth", "lesion"])
    w.add_volume(
        Volume(rng.normal(size=(10, 12, 14)).astype(np.float32), spacing=(2.0, 1.0, 0.5)), "c1"
    )
    return w


def test_provenance_history_survives_restart_and_reverts(ws, tmp_path):
    lab = ws.load_labels("c1")
    lab[3] = 0
    lab[3, 2:5, 2:5] = 1
    ws.save_labels("c1", lab)  # drawn, v1
    lab[3, 2:5, 2:5] = 2
    ws.save_labels("c1", lab)  # drawn again, v2
    ev = ws.provenance.events("c1", 3)
    assert [e.how for e in ev] == ["drawn", "drawn"] and [e.version for e in ev] == [1, 2]
    # an accepted proposal, then edited: Dice between proposal and final is recorded
    prop = np.zeros((12, 14), np.uint8)
    prop[4:8, 4:8] = 1
    lab[6] = prop
    ws.save_labels("c1", lab, how={6: "accepted"}, proposals={6: prop}, model_version="v1")
    ws.tag_accepted("c1", 6)
    lab[6, 4:8, 6:8] = 0  # the human erases half
    ws.save_labels("c1", lab)
    w2 = Workspace.open(tmp_path / "ws")
    last = w2.provenance.latest("c1", 6)
    assert last.how == "edited-from-proposal"
    assert last.dice_to_proposal == pytest.approx(2 * 8 / (16 + 8))
    assert w2.provenance.events("c1", 6)[0].model_version == "v1"
    # multi-level undo after the restart
    w2.revert_slice("c1", 3, 1)
    assert (w2.load_labels("c1")[3, 2:5, 2:5] == 1).all()
    assert w2.provenance.latest("c1", 3).how == "reverted"
    w2.revert_slice("c1", 6, 1)  # back to the accepted proposal: tagged accepted again
    assert w2.accepted_slices("c1") == [6]
    np.testing.assert_array_equal(w2.load_labels("c1")[6], prop)
    with pytest.raises(Exception, match="no version 9"):
        w2.revert_slice("c1", 3, 9)
    w2.mark_slice("c1", 3, False)
    assert w2.provenance.latest("c1", 3).how == "unmarked"
    assert w2.provenance.correction_dice(["c1"]) == [1.0]


def test_slice_dice():
    a = np.zeros((4, 4), np.uint8)
    assert slice_dice(a, a) == 1.0
    b = a.copy()
    b[:2] = 1
    assert slice_dice(a, b) == 0.0
    c = b.copy()
    c[0] = 255  # ignored voxels are left out
    assert slice_dice(b, c) == 1.0


def test_frozen_validation_never_reshuffles(ws, tmp_path):
    fv = FrozenValidation(tmp_path / "val.json", fraction=0.5, min_train=2)
    first = {"c1": [0, 1, 2, 3, 4, 5]}
    fv.update(first)
    val1 = fv.validation_slices(first)
    assert all(slice_hash("c1", z) < 0.5 for z in val1.get("c1", []))
    # the first two slices are training slices whatever their hash
    assert 0 not in val1.get("c1", []) and 1 not in val1.get("c1", [])
    fv2 = FrozenValidation(tmp_path / "val.json")
    more = {"c1": list(range(10))}
    fv2.update(more)
    val2 = fv2.validation_slices(more)
    assert set(val1.get("c1", [])) <= set(val2["c1"])
    expected_new = [z for z in range(6, 10) if slice_hash("c1", z) < 0.5]
    assert sorted(set(val2["c1"]) - set(val1.get("c1", []))) == expected_new
    # un-annotated slices drop out, but are not reassigned
    assert fv2.validation_slices({"c1": []}) == {}


def test_training_labels_exclude_validation(ws, tmp_path):
    lab = ws.load_labels("c1")
    lab[:8] = 0
    lab[:8, 3, 3] = 1
    ws.save_labels("c1", lab)
    ws.validation.fraction = 0.5
    ws.validation.min_train = 1
    ws.validation.update({"c1": ws.annotated_slices("c1")})
    val = ws.validation.validation_slices()["c1"]
    assert val
    train = materialize_training_labels(ws, ws.validation, tmp_path / "train")
    from barl_core.io.volume import read_volume

    t = read_volume(tmp_path / "train" / "c1.nii.gz").array
    for z in val:
        assert (t[z] == IGNORE_INDEX).all()
    assert train["c1"] == [z for z in range(8) if z not in val]
    pred = lab.copy()
    pred[val[0], 3, 3] = 0  # one validation slice wrong
    m = evaluate({"c1": pred}, {"c1": lab}, {"c1": val}, ws.class_names)
    assert m["n_slices"] == len(val)
    assert m["mean_dice"] == pytest.approx((len(val) - 1) / len(val))


def test_versions_and_rollback(ws, tmp_path):
    for i in (1, 2):
        p = ws.models_dir / f"r{i}" / "model.pt"
        p.parent.mkdir()
        p.write_bytes(b"x")
        v = ws.add_version(p, config={"iterations": i}, data_snapshot={"c1": list(range(i))})
    assert v.id == "v2" and v.parent == "v1"
    ws.versions.set_metrics("v1", {"mean_dice": 0.5})
    ws.versions.set_metrics("v2", {"mean_dice": 0.7})
    w2 = Workspace.open(tmp_path / "ws")
    assert w2.versions.learning_curve() == [("v1", 1, 0.5), ("v2", 2, 0.7)]
    assert w2.current_version().id == "v2"
    assert w2.rollback("v1").name == "model.pt"
    assert Workspace.open(tmp_path / "ws").current_version().id == "v1"
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 1
    assert compare_slices(a, b)["changed_fraction"] == pytest.approx(1 / 16)


def test_gate_and_fill():
    pred = np.array([[[1, 2], [0, 1]]], np.uint8)
    conf = np.array([[[0.95, 0.5], [0.99, 0.9]]], np.float16)
    g = gate(pred, conf, 0.9)
    np.testing.assert_array_equal(g, [[[1, NEEDS_HUMAN], [0, 1]]])
    assert (gate(pred, conf, 0.9, skip_slices=[0]) == NEEDS_HUMAN).all()
    sp = proposal_for_slice(pred, conf, 0, 0.96)
    assert sp.coverage == 0.25
    np.testing.assert_array_equal(fill_proposal(sp.proposal, pred[0], 3), pred[0])


def test_agreement_maps_require_both_branches():
    pa = np.zeros((2, 1, 1, 3), np.float16)
    pb = np.zeros_like(pa)
    pa[:, 0, 0, 0], pb[:, 0, 0, 0] = (0.05, 0.95), (0.1, 0.9)  # agree, sure
    pa[:, 0, 0, 1], pb[:, 0, 0, 1] = (0.4, 0.6), (0.6, 0.4)  # argmax differs
    pa[:, 0, 0, 2], pb[:, 0, 0, 2] = (0.2, 0.8), (0.3, 0.7)  # agree, less sure
    labels, dis, conf = agreement_maps(pa, pb)
    np.testing.assert_allclose(conf[0, 0].astype(float), [0.9, 0.0, 0.7], atol=1e-3)
    assert labels[0, 0, 0] == 1 and dis[0, 0, 1] > dis[0, 0, 0]


def test_predict_with_agreement_matches_predict_volume(rng):
    import torch

    from barl_core.inference.predict import LoadedModel, predict_volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig

    torch.manual_seed(0)
    net = BiBranchNet(NetworkConfig(num_classes=3, base_channels=4, depth=2, proj_dim=8))
    m = LoadedModel.from_module(net, patch_size=(8, 16, 16))
    vol = Volume(rng.normal(size=(8, 16, 16)).astype(np.float32))
    ref = predict_volume(m, vol)
    res = predict_with_agreement(m, vol)
    assert (res.labels == ref.labels).mean() > 0.99
    np.testing.assert_allclose(
        res.disagreement.astype(float), ref.disagreement.astype(float), atol=2e-3
    )
    assert (
        res.confidence.dtype == np.float16
        and 0 <= res.confidence.min() <= res.confidence.max() <= 1
    )


def test_advice_rules():
    cfg = AdviceConfig()
    a = advise([], n_annotated=2, has_model=False, suggestions=["s1", "s2", "s3", "s4"])
    assert a.action == "label-more" and a.n_slices == 3 and a.slices == ["s1", "s2", "s3"]
    assert advise([], n_annotated=6, has_model=False).action == "train"
    assert advise([(5, 0.5)], n_annotated=9, unused_slices=4, has_model=True).action == "fine-tune"
    good = advise(
        [(5, 0.86), (10, 0.865)],
        n_annotated=10,
        has_model=True,
        correction_dice=[0.95, 0.97],
        disagreement_trend=[0.2, 0.1],
    )
    assert good.action == "export"
    # humans still correct a lot: not good enough
    busy = advise(
        [(5, 0.86), (10, 0.865)],
        n_annotated=10,
        has_model=True,
        correction_dice=[0.5, 0.6],
        suggestions=list(range(30)),
    )
    assert busy.action == "label-more"
    # slope 0.02/slice, 0.15 to go -> 8 slices
    more = advise(
        [(5, 0.5), (10, 0.6), (15, 0.7)],
        n_annotated=15,
        has_model=True,
        suggestions=list(range(30)),
        cfg=cfg,
    )
    assert more.action == "label-more" and more.n_slices == 8 and more.slices == list(range(8))


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_audit_bundle_readable_by_independent_readers(ws, tmp_path):
    lab = ws.load_labels("c1")
    lab[2] = 1
    ws.save_labels("c1", lab)
    pred = np.zeros((10, 12, 14), np.uint8)
    pred[5:, 3:6, 3:6] = 2
    ws.set_prediction("c1", pred, np.full(pred.shape, 0.1, np.float32))
    b = export_bundle(ws, "c1", tmp_path / "audit")
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
