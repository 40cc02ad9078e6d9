"""The frozen validation split and the training labels that leave it out."""

from __future__ import annotations

import pytest

from barl_core.data.labels import IGNORE_INDEX
from barl_core.workspace.validation import (
    FrozenValidation,
    evaluate,
    materialize_training_labels,
    slice_hash,
)


def test_frozen_validation_never_reshuffles(ws1, tmp_path):
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

def test_training_labels_exclude_validation(ws1, tmp_path):
    lab = ws1.load_labels("c1")
    lab[:8] = 0
    lab[:8, 3, 3] = 1
    ws1.save_labels("c1", lab)
    ws1.validation.fraction = 0.5
    ws1.validation.min_train = 1
    ws1.validation.update({"c1": ws1.annotated_slices("c1")})
    val = ws1.validation.validation_slices()["c1"]
    assert val
    train = materialize_training_labels(ws1, ws1.validation, tmp_path / "train")
    from barl_core.io.volume import read_volume

    t = read_volume(tmp_path / "train" / "c1.nii.gz").array
    for z in val:
        assert (t[z] == IGNORE_INDEX).all()
    assert train["c1"] == [z for z in range(8) if z not in val]
    pred = lab.copy()
    pred[val[0], 3, 3] = 0  # one validation slice wrong
    m = evaluate({"c1": pred}, {"c1": lab}, {"c1": val}, ws1.class_names)
    assert m["n_slices"] == len(val)
    assert m["mean_dice"] == pytest.approx((len(val) - 1) / len(val))
