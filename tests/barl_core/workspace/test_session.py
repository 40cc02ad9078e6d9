"""The GUI's whole loop through :class:`Session`, headless: annotate, train, predict, review, export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from barl_core.active.proposals import NEEDS_HUMAN
from barl_core.errors import BarlError, EmptyDatasetError, InputFileError
from barl_core.workspace.layout import Workspace
from barl_core.workspace.session import PredictionOutcome, Session

PAINTED = (2, 5, 9, 13, 17, 20)
CLASSES = ["background", "bone", "tooth", "lesion"]


def test_whole_loop_headless(tmp_path, phantom, tiny_config):
    volume, truth = phantom
    s = Session.open(tmp_path / "ws", CLASSES)
    case = s.add_volume(volume, "CBCT phantom!")
    assert case == "CBCT_phantom" and s.cases == [case]
    # a second volume of the same name gets a unique case name
    assert s.add_volume(volume, "CBCT phantom!") == "CBCT_phantom_2"

    with pytest.raises(EmptyDatasetError):
        s.start_training(tiny_config())

    # annotate: paint a few slices with the truth
    for z in PAINTED:
        s.annotate_slice(case, z, truth[z])
    assert Workspace.open(tmp_path / "ws").annotated_slices(case) == list(PAINTED)

    # train in a real child process; the run becomes version v1 with its data snapshot
    updates = []
    v1 = s.train(tiny_config(patch_size=(16, 16, 16)), on_update=updates.append,
                 predict_cases=[case])
    kinds = [u.kind for u in updates]
    assert "progress" in kinds and kinds.count("done") == 2  # training, then prediction
    assert v1.id == "v1" and s.current_version_id() == "v1"
    assert v1.data_snapshot == {case: list(PAINTED)}
    train_z = v1.training_slices[case]
    val_z = v1.validation_slices.get(case, [])
    assert sorted(train_z + val_z) == list(PAINTED) and not set(train_z) & set(val_z)
    assert s.workspace.current_model_path().exists()
    # the validation slices were held out of the training labels
    held = s.workspace.models_dir / ".train_labels" / f"{case}.nii.gz"
    train_labels = np.asarray(nib.load(held).dataobj).transpose(2, 1, 0)
    for z in val_z:
        assert (train_labels[z] == 255).all()
    for z in train_z:
        np.testing.assert_array_equal(train_labels[z], truth[z])

    # predict: labels, disagreement and agreement confidence are filed under v1
    pred = s.workspace.load_prediction(case)
    dis = s.workspace.load_disagreement(case)
    conf = s.workspace.load_confidence(case)
    assert pred.shape == dis.shape == conf.shape == volume.shape
    assert s.workspace.version_prediction_path("v1", case).exists()
    assert case in s.versions[0].disagreement
    if val_z:
        assert s.versions[0].metrics is not None

    # suggest: never an annotated slice
    sugg = s.suggest_slices(case, top_k=3)
    assert 1 <= len(sugg) <= 3 and not {x.index for x in sugg} & set(PAINTED)
    # the minimap's per-slice quantity is the one the ranking reports for each pick
    profile, label = s.slice_profile(case)
    assert profile.shape == (volume.shape[0],) and label
    for x in sugg:
        assert x.reason and x.uncertainty == pytest.approx(profile[x.index])
    outcome = s.predict([case, "CBCT_phantom_2"])
    assert isinstance(outcome, PredictionOutcome) and outcome.missing == []
    assert [c.name for c in s.suggest_cases()] != []

    # proposals: none on annotated slices; accept one slice, reject another
    prop = s.proposal(case, threshold=0.0)
    assert (prop[list(PAINTED)] == NEEDS_HUMAN).all()
    z_acc, z_rej = sugg[0].index, next(z for z in range(24) if z not in PAINTED + (sugg[0].index,))
    values, proposal = s.proposal_values(case, z_acc, threshold=0.5)
    np.testing.assert_array_equal(values[proposal != NEEDS_HUMAN], proposal[proposal != NEEDS_HUMAN])
    slices = s.accept_proposal(case, z_acc, threshold=0.5)
    assert z_acc in slices and z_acc in s.workspace.accepted_slices(case)
    np.testing.assert_array_equal(s.workspace.load_labels(case)[z_acc], values)
    assert s.workspace.provenance.events(case, z_acc)[-1].how == "accepted"
    with pytest.raises(BarlError, match="already annotated"):
        s.accept_proposal(case, z_acc)
    s.reject_proposal(case, z_rej)
    assert (s.proposal(case, 0.0)[z_rej] == NEEDS_HUMAN).all()

    # fine-tune: v2 with v1 as parent; roll back to v1
    v2 = s.train(tiny_config(patch_size=(16, 16, 16), iterations=2), fine_tune=True)
    assert v2.id == "v2" and v2.parent == "v1" and z_acc in v2.data_snapshot[case]
    assert s.rollback("v1") == s.workspace.folder / v1.path
    assert s.current_version_id() == "v1"
    reopened = Session.open(tmp_path / "ws")
    assert reopened.current_version_id() == "v1" and [v.id for v in reopened.versions] == ["v1", "v2"]

    # export: labels and prediction as NIfTI on the source grid
    written, skipped = s.export(tmp_path / "out", "prediction", [case])
    assert skipped == [] and [p.name for p in written] == [f"{case}_prediction.nii.gz"]
    exported = np.asarray(nib.load(written[0]).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(exported, s.workspace.load_prediction(case))
    labels = s.workspace.load_labels(case)
    written, _ = s.export(tmp_path / "out", "labels", [case])
    exported = np.asarray(nib.load(written[0]).dataobj).transpose(2, 1, 0)
    # 255 ("not annotated") never leaves the workspace: other tools would show it as a label
    np.testing.assert_array_equal(exported, np.where(labels == 255, 0, labels))
    written, _ = s.export(tmp_path / "out", "final", [case])
    exported = np.asarray(nib.load(written[0]).dataobj).transpose(2, 1, 0)
    annotated = labels != 255
    np.testing.assert_array_equal(exported[annotated], labels[annotated])
    np.testing.assert_array_equal(exported[~annotated], s.workspace.load_prediction(case)[~annotated])
    with pytest.raises(InputFileError):
        s.export(tmp_path / "out", "probabilities")
    bundles = s.export_audit(tmp_path / "audit", [case])
    assert len(bundles) == 1


def test_adopt_class_names_only_before_annotating(tmp_path, phantom):
    volume, truth = phantom
    s = Session.open(tmp_path / "ws")
    case = s.add_volume(volume, "a")
    assert s.adopt_class_names(CLASSES) and s.class_names == CLASSES
    s.annotate_slice(case, 1, truth[1])
    assert not s.adopt_class_names(["background", "x"]) and s.class_names == CLASSES
