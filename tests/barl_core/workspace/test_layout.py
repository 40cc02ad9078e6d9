"""The Qt-free workspace model: autosave, slice marking, safety."""

from __future__ import annotations

import json

import numpy as np
import pytest

from barl_core.data.case_names import sanitize_case_name
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import BarlError, GeometryMismatchError, LabelValueError
from barl_core.io.volume import Volume, read_volume
from barl_core.workspace.layout import Workspace
from barl_core.workspace.session import Session


@pytest.fixture
def volume() -> Volume:
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(8, 12, 10)).astype(np.float32)
    return Volume(arr, spacing=(2.0, 0.5, 0.4), origin=(10.0, -5.0, 3.0))


@pytest.fixture
def ws(tmp_path, volume) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", ["background", "tooth", "lesion"])
    ws.add_volume(volume, "case_a")
    return ws


def test_create_layout_and_state(ws, volume):
    for sub in ("imagesTr", "labelsTr", "models", "predictions"):
        assert (ws.folder / sub).is_dir()
    state = json.loads((ws.folder / "workspace.json").read_text())
    assert state["class_names"] == ["background", "tooth", "lesion"]
    assert [c["name"] for c in state["cases"]] == ["case_a"]
    img = read_volume(ws.image_path("case_a"))
    np.testing.assert_allclose(img.spacing, volume.spacing, rtol=1e-6)
    np.testing.assert_allclose(img.origin, volume.origin, rtol=1e-6)
    assert ws.case_state("case_a") == "unlabelled"
    assert (ws.load_labels("case_a") == IGNORE_INDEX).all()


def test_labels_survive_close_and_reopen(ws):
    labels = ws.load_labels("case_a")
    labels[2] = 0
    labels[2, 3:6, 4:7] = 1
    labels[5] = 2
    assert ws.save_labels("case_a", labels) == [2, 5]
    folder = ws.folder
    del ws
    reopened = Workspace.open(folder)
    assert reopened.annotated_slices("case_a") == [2, 5]
    got = reopened.load_labels("case_a")
    np.testing.assert_array_equal(got, labels)
    assert reopened.case_state("case_a") == "2 slices annotated"
    assert reopened.class_names == ["background", "tooth", "lesion"]


def test_label_file_is_the_truth_after_a_stale_state(ws):
    labels = ws.load_labels("case_a")
    labels[1] = 1
    ws.save_labels("case_a", labels)
    # simulate a crash after the label write but before the JSON write
    state = json.loads((ws.folder / "workspace.json").read_text())
    state["cases"][0]["annotated_slices"] = []
    (ws.folder / "workspace.json").write_text(json.dumps(state))
    assert Workspace.open(ws.folder).annotated_slices("case_a") == [1]


def test_mark_and_unmark(ws):
    labels = ws.load_labels("case_a")
    labels[3, 0, 0] = 2  # a painted stroke: the rest of that slice becomes background
    labels[3][labels[3] == IGNORE_INDEX] = 0
    ws.save_labels("case_a", labels)
    assert ws.mark_slice("case_a", 6, True) == [3, 6]
    lab = ws.load_labels("case_a")
    assert (lab[6] == 0).all() and lab[3, 0, 0] == 2
    # marking an already painted slice keeps the strokes
    ws.mark_slice("case_a", 3, True)
    assert ws.load_labels("case_a")[3, 0, 0] == 2
    assert ws.mark_slice("case_a", 3, False) == [6]
    assert (ws.load_labels("case_a")[3] == IGNORE_INDEX).all()
    assert ws.mark_slice("case_a", 6, False) == []
    assert not ws.label_path("case_a").exists()  # an unlabelled case has no label file
    assert ws.case_state("case_a") == "unlabelled"
    with pytest.raises(BarlError):
        ws.mark_slice("case_a", 99, True)


def test_prediction_accept_and_scores(ws):
    with pytest.raises(BarlError):
        Session(ws).accept_proposal("case_a", 0)
    pred = np.zeros((8, 12, 10), np.uint8)
    pred[4, 2:5, 2:5] = 1
    dis = np.zeros((8, 12, 10), np.float32)
    dis[4] = 0.5
    score = ws.set_prediction("case_a", pred, dis)
    assert score == pytest.approx(0.5 / 5)  # mean of the 5 most uncertain unannotated slices
    assert ws.case_state("case_a") == "predicted"
    assert ws.disagreement_scores() == {"case_a": pytest.approx(0.1)}
    assert Session(ws).accept_proposal("case_a", 4) == [4]  # no threshold: the prediction
    np.testing.assert_array_equal(ws.load_labels("case_a")[4], pred[4])
    reopened = Workspace.open(ws.folder)
    assert reopened.case_state("case_a") == "predicted"
    np.testing.assert_allclose(reopened.load_disagreement("case_a"), dis)


def test_rejects_bad_input(ws, volume):
    for bad in ("../evil", "a/b", "..", "", "x" * 201, "/abs", "a b", "-a", "ok:no", "a\\b"):
        with pytest.raises(BarlError):
            ws.add_volume(volume, bad)
        with pytest.raises(BarlError):
            ws.load_labels(bad)
    assert not any((ws.folder.parent).glob("evil*"))
    with pytest.raises(GeometryMismatchError):
        ws.save_labels("case_a", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(LabelValueError):
        ws.save_labels("case_a", np.full((8, 12, 10), 7, np.uint8))
    with pytest.raises(BarlError):
        ws.add_volume(volume, "case_a")  # duplicate
    assert sanitize_case_name("my scan (1)") == "my_scan_1"
    assert "/" not in sanitize_case_name("../../etc/passwd")


def test_models_and_classes(ws):
    run = ws.new_run_dir()
    (run / "model.pt").write_bytes(b"x")
    v = ws.add_version(run / "model.pt", config={"method": "barl"}, data_snapshot={})
    again = Workspace.open(ws.folder)
    assert again.current_model_path() == run / "model.pt"
    assert again.current_version().id == v.id == "v1"
    assert again.versions.get("v1").config == {"method": "barl"}
    assert "model_history" not in json.loads((ws.folder / "workspace.json").read_text())
    labels = again.load_labels("case_a")
    labels[0] = 2
    again.save_labels("case_a", labels)
    with pytest.raises(LabelValueError):
        again.set_class_names(["background", "tooth"])
    again.set_class_names(["background", "tooth", "caries"])
    assert Workspace.open(ws.folder).class_names[2] == "caries"


def test_adopts_an_msd_folder(tmp_path, volume):
    from barl_core.io.volume import write_labels, write_volume

    write_volume(volume, tmp_path / "ds" / "imagesTr" / "c1.nii.gz")
    write_volume(volume, tmp_path / "ds" / "imagesTr" / "c2.nii.gz")
    lab = np.full(volume.shape, IGNORE_INDEX, np.uint8)
    lab[1] = 1
    write_labels(lab, volume, tmp_path / "ds" / "labelsTr" / "c1.nii.gz")
    ws = Workspace.open(tmp_path / "ds")
    assert ws.cases == ["c1", "c2"]
    assert ws.annotated_slices("c1") == [1] and ws.case_state("c2") == "unlabelled"
    assert (tmp_path / "ds" / "workspace.json").exists()


def test_old_model_history_is_folded_into_the_version_registry(ws):
    """A workspace.json written before the registry was one: its models become versions."""
    runs = [ws.new_run_dir(f"old{i}") for i in range(2)]
    for r in runs:
        (r / "model.pt").write_bytes(b"x")
    v1 = ws.add_version(runs[0] / "model.pt", config={}, data_snapshot={})
    state = json.loads((ws.folder / "workspace.json").read_text())
    rel = [r.relative_to(ws.folder).as_posix() + "/model.pt" for r in runs]
    state["model_history"] = [
        {"path": rel[0], "created": 1.0, "info": {"version": v1.id}},
        {"path": rel[1], "created": 2.0, "info": {"config": {"iterations": 7}}},
    ]
    state["current_model"] = rel[1]
    (ws.folder / "workspace.json").write_text(json.dumps(state))
    again = Workspace.open(ws.folder)
    assert [v.path for v in again.versions.versions] == rel  # the known one is not repeated
    v2 = again.versions.get("v2")
    assert v2.config == {"iterations": 7} and v2.created == 2.0 and v2.parent == "v1"
    assert again.current_version().id == "v2"
    assert "model_history" not in json.loads((ws.folder / "workspace.json").read_text())
    assert [v.id for v in Workspace.open(ws.folder).versions.versions] == ["v1", "v2"]
