"""Sparse-label datasets on disk: find, check and load the cases of a folder."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.case_names import case_name_from_file
from barl_core.data.dataset import check_labels, dataset_summary, find_cases, load_dataset
from barl_core.errors import LabelValueError
from barl_core.io.volume import Volume, write_labels, write_volume
from tests.barl_core.data.conftest import sparse_labels


def _write_case(images, labels, name, image, lab=None, suffix="_0000", ext=".nii.gz"):
    vol = Volume(image, spacing=(2.0, 1.0, 0.5))
    write_volume(vol, images / f"{name}{suffix}{ext}")
    if lab is not None:
        write_labels(lab, vol, labels / f"{name}.nii.gz")
    return vol

def test_load_dataset_msd_layout(tmp_path, rng):
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    img = rng.normal(size=(12, 10, 9)).astype(np.float32)
    _write_case(images, labels, "a", img, sparse_labels())
    _write_case(images, labels, "b", img, None, suffix="", ext=".nrrd")
    _write_case(images, labels, "c", img, np.zeros(img.shape, np.uint8), suffix="")
    cases = load_dataset(tmp_path, num_classes=3)
    assert [c.name for c in cases] == ["a", "b", "c"]
    assert [c.status.kind for c in cases] == ["partial", "unlabelled", "labelled"]
    assert cases[0].status.slices == [2, 6, 9]
    assert cases[0].labels.dtype == np.uint8
    assert cases[1].labels is None and cases[1].label_path is None
    # the images folder itself works too (sibling labelsTr found)
    assert len(load_dataset(images)) == 3
    rows = dataset_summary(cases)
    assert rows[0]["status"] == "partial" and rows[0]["slices"] == [2, 6, 9]
    assert set(rows[0]["label_values"]) <= {0, 1, 2, 255}
    assert rows[1]["label_values"] == {}

def test_float_labels_with_whole_values_are_accepted():
    out = check_labels(np.array([[[0.0, 1.0, 4.0]]], np.float32), num_classes=5)
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 1, 4]]]
    with pytest.raises(LabelValueError):
        check_labels(np.array([[[0.5]]], np.float32))
    with pytest.raises(LabelValueError, match=r"\[7\]"):
        check_labels(np.array([[[0, 7, 255]]]), num_classes=3)
    assert check_labels(np.array([[[0, 2, 255]]]), num_classes=3).max() == 255

def test_case_names():
    assert case_name_from_file("liver_12_0000.nii.gz") == "liver_12"
    assert case_name_from_file("liver_12.nrrd") == "liver_12"
    assert case_name_from_file("x_abcd.mha") == "x_abcd"

def test_find_cases_ignores_hidden_and_other_files(tmp_path, rng):
    images = tmp_path / "imagesTr"
    _write_case(images, None, "a", rng.normal(size=(3, 4, 5)).astype(np.float32))
    (images / ".a.nii.gz.tmp123.nii.gz").write_bytes(b"partial")
    (images / "notes.txt").write_text("hello")
    assert [c.name for c in find_cases(images)] == ["a"]


# ---------------------------------------------------------------- sampler
