"""Sparse-label datasets: status, normalisation, loading, patch sampling."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.case_names import case_name_from_file
from barl_core.data.dataset import (
    Case,
    NormalizationConfig,
    NormStats,
    PatchSampler,
    TrainingVolume,
    annotation_status,
    check_labels,
    compute_norm_stats,
    dataset_summary,
    find_cases,
    load_dataset,
    normalize,
    normalize_volume,
    training_volumes,
)
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import EmptyDatasetError, InvalidVolumeError, LabelValueError
from barl_core.io.volume import Volume, write_labels, write_volume


def _sparse(shape=(12, 10, 9), slices=(2, 6, 9), axis=0, rng=None):
    rng = rng or np.random.default_rng(0)
    full = rng.integers(0, 3, size=shape).astype(np.uint8)
    lab = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    idx = [slice(None)] * 3
    idx[axis] = list(slices)
    lab[tuple(idx)] = full[tuple(idx)]
    return lab


# ---------------------------------------------------------------- annotation status
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_partial_status_finds_slices_and_axis(axis):
    lab = _sparse(slices=(1, 4, 7), axis=axis)
    st = annotation_status(lab)
    assert st.kind == "partial"
    assert st.axis == axis
    assert st.slices == [1, 4, 7]
    assert st.whole_slices
    assert st.annotated_fraction == pytest.approx(3 / lab.shape[axis])


def test_status_labelled_unlabelled_and_scribbles():
    assert annotation_status(None).kind == "unlabelled"
    assert annotation_status(np.full((3, 4, 5), 255, np.uint8)).kind == "unlabelled"
    full = annotation_status(np.zeros((3, 4, 5), np.uint8))
    assert (full.kind, full.annotated_fraction) == ("labelled", 1.0)
    scribble = np.full((8, 9, 10), 255, np.uint8)
    scribble[5, 2:4, 1:6] = 1  # part of one axial slice
    st = annotation_status(scribble)
    assert st.kind == "partial" and not st.whole_slices
    assert st.axis == 0 and st.slices == [5]
    assert "partly" in st.describe()


def test_status_with_custom_ignore_value():
    lab = np.full((4, 4, 4), 99, np.uint8)
    lab[2] = 0
    assert annotation_status(lab, ignore_index=99).slices == [2]
    assert annotation_status(lab).kind == "labelled"


# ---------------------------------------------------------------- normalisation
def test_percentile_zscore_clips_outliers(rng):
    arr = rng.normal(100.0, 20.0, size=(20, 20, 20)).astype(np.float32)
    arr[0, 0, :5] = 30000.0  # metal
    out, stats = normalize_volume(arr)
    assert out.dtype == np.float32
    assert stats.upper < 1000 and stats.lower > -1000
    assert abs(float(out.mean())) < 0.05 and abs(float(out.std()) - 1.0) < 0.05
    assert float(out.max()) < 4.0  # the metal was clipped


def test_normalisation_modes(rng):
    arr = rng.uniform(-500, 1500, size=(10, 10, 10)).astype(np.float32)
    mm, _ = normalize_volume(
        arr, NormalizationConfig(mode="minmax", lower_percentile=0, upper_percentile=100)
    )
    assert float(mm.min()) == pytest.approx(0.0, abs=1e-6) and float(mm.max()) == pytest.approx(
        1.0, abs=1e-6
    )
    z, st = normalize_volume(arr, NormalizationConfig(mode="zscore"))
    assert float(z.std()) == pytest.approx(1.0, abs=1e-3)
    assert st.lower == pytest.approx(float(arr.min()))
    none, _ = normalize_volume(arr, NormalizationConfig(mode="none"))
    np.testing.assert_array_equal(none, arr)
    with pytest.raises(InvalidVolumeError):
        NormalizationConfig(mode="bogus")
    with pytest.raises(InvalidVolumeError):
        NormalizationConfig(lower_percentile=60, upper_percentile=40)


def test_constant_volume_and_stats_round_trip():
    out, stats = normalize_volume(np.full((4, 4, 4), 7.0))
    assert np.all(out == 0.0)
    restored = NormStats.from_dict(stats.to_dict())
    assert restored == stats
    fixed = NormStats(0.0, 10.0, 5.0, 2.0)
    np.testing.assert_allclose(
        normalize(np.array([[[-5.0, 5.0, 20.0]]]), fixed), [[[-2.5, 0.0, 2.5]]]
    )


def test_norm_stats_refuse_nan():
    arr = np.zeros((3, 3, 3), np.float32)
    arr[1, 1, 1] = np.nan
    with pytest.raises(InvalidVolumeError, match="NaN"):
        compute_norm_stats(arr)


# ---------------------------------------------------------------- loading
def _write_case(images, labels, name, image, lab=None, suffix="_0000", ext=".nii.gz"):
    vol = Volume(image, spacing=(2.0, 1.0, 0.5))
    write_volume(vol, images / f"{name}{suffix}{ext}")
    if lab is not None:
        write_labels(lab, vol, labels / f"{name}.nii.gz")
    return vol


def test_load_dataset_msd_layout(tmp_path, rng):
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    img = rng.normal(size=(12, 10, 9)).astype(np.float32)
    _write_case(images, labels, "a", img, _sparse())
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
def test_labelled_patches_contain_annotated_slices(rng):
    shape = (40, 24, 24)
    lab = np.full(shape, IGNORE_INDEX, np.uint8)
    lab[[5, 20, 33]] = 0
    lab[20, 10:14, 10:14] = 2
    img = rng.normal(size=shape).astype(np.float32)
    sampler = PatchSampler([TrainingVolume(img, lab, "a")], (8, 16, 16), np.random.default_rng(1))
    images, labels = sampler.sample_labelled(30)
    assert images.shape == (30, 1, 8, 16, 16) and images.dtype == np.float32
    assert labels.shape == (30, 8, 16, 16) and labels.dtype == np.int64
    for patch in labels:
        annotated = (patch != IGNORE_INDEX).reshape(8, -1)
        rows = np.flatnonzero(annotated.any(axis=1))
        assert rows.size >= 1  # a whole labelled slice (within the crop) is in the patch
        assert annotated[rows].all()
    assert (labels == 2).any()  # foreground oversampling finds the small class
    # patches are real crops of the volume
    z = int(np.flatnonzero((labels[0] != IGNORE_INDEX).any(axis=(1, 2)))[0])
    assert np.isin(images[0, 0, z], img).all()


def test_unlabelled_patches_come_from_all_volumes_and_small_volumes_are_padded():
    a = TrainingVolume(np.zeros((6, 6, 6), np.float32), _sparse((6, 6, 6), (1, 3)), "a")
    b = TrainingVolume(np.ones((20, 20, 20), np.float32), None, "b")
    sampler = PatchSampler([a, b], (8, 8, 8), 0)
    u = sampler.sample_unlabelled(40)
    assert u.shape == (40, 1, 8, 8, 8)
    means = u.reshape(40, -1).mean(axis=1)
    assert (means == 1.0).any() and (means < 1.0).any()  # both volumes are drawn
    images, labels = sampler.sample_labelled(5)
    # only "a" is annotated; it is 6^3 and padded to 8^3 with ignore labels
    assert (labels == IGNORE_INDEX).reshape(5, -1).sum(axis=1).min() >= 8**3 - 6**3
    assert sampler.n_labelled_volumes == 1


def test_sampler_is_deterministic_and_refuses_no_annotations():
    vols = [
        TrainingVolume(
            np.arange(1000, dtype=np.float32).reshape(10, 10, 10), _sparse((10, 10, 10), (4,)), "a"
        )
    ]
    x1, y1 = PatchSampler(vols, (4, 4, 4), 3).sample_labelled(6)
    x2, y2 = PatchSampler(vols, (4, 4, 4), 3).sample_labelled(6)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    empty = PatchSampler([TrainingVolume(np.zeros((5, 5, 5), np.float32), None, "u")], (4, 4, 4), 0)
    with pytest.raises(EmptyDatasetError):
        empty.sample_labelled(1)
    with pytest.raises(EmptyDatasetError):
        PatchSampler([], (4, 4, 4), 0)


def test_training_volumes_normalise_and_drop_empty_labels(rng):
    vol = Volume(rng.normal(500, 100, size=(6, 6, 6)).astype(np.float32))
    cases = [
        Case("a", vol, _sparse((6, 6, 6), (2,)), None, None),  # type: ignore[arg-type]
        Case("b", vol, np.full((6, 6, 6), 255, np.uint8), None, None),  # type: ignore[arg-type]
    ]
    tv = training_volumes(cases)
    assert abs(float(tv[0].image.mean())) < 0.1
    assert tv[0].labels is not None and tv[1].labels is None
