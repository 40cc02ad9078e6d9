"""The synthetic dental CBCT phantom: deterministic, anatomical, and not trivial."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from barl_core.data.annotation import annotation_status
from barl_core.data.dataset import load_dataset
from barl_core.data.phantom import (
    PHANTOM_CLASSES,
    PhantomConfig,
    choose_annotated_slices,
    make_phantom,
    make_phantom_dataset,
)
from barl_core.errors import InvalidVolumeError
from barl_core.evaluation.metrics import dice
from barl_core.io.volume import read_volume

SMALL = (32, 48, 48)


@pytest.fixture(scope="module")
def default_phantom():
    return make_phantom()


def test_deterministic_and_seed_dependent():
    v1, l1 = make_phantom(shape=SMALL, seed=4)
    v2, l2 = make_phantom(PhantomConfig(shape=SMALL, seed=4))
    np.testing.assert_array_equal(v1.array, v2.array)
    np.testing.assert_array_equal(l1, l2)
    v3, l3 = make_phantom(shape=SMALL, seed=5)
    assert not np.array_equal(l1, l3)
    assert not np.allclose(v1.array, v3.array)


def test_types_geometry_and_classes(default_phantom):
    vol, lab = default_phantom
    assert vol.shape == (64, 96, 96) == lab.shape
    assert vol.array.dtype == np.float32 and lab.dtype == np.uint8
    assert vol.spacing == (0.4, 0.3, 0.3)  # anisotropic
    assert len(PHANTOM_CLASSES) == 4
    counts = np.bincount(lab.ravel(), minlength=4)
    assert counts.size == 4 and (counts > 0).all()
    # HU-like: air, soft tissue, bone and enamel all present
    assert vol.array.min() < -800 and vol.array.max() > 2000
    means = [float(vol.array[lab == c].mean()) for c in range(4)]
    assert means[2] > means[1] > means[3]  # tooth brighter than bone, lesion darker


def test_anatomy_is_arranged_as_a_jaw(default_phantom):
    _, lab = default_phantom
    teeth_z = np.flatnonzero((lab == 2).any(axis=(1, 2)))
    bone_z = np.flatnonzero((lab == 1).any(axis=(1, 2)))
    assert teeth_z.max() > bone_z.max()  # crowns stand above the bone crest
    n_teeth = ndimage.label(lab == 2)[1]
    assert n_teeth >= 4
    # lesions lie in the bone: every lesion voxel touches bone or lesion only
    grown = ndimage.binary_dilation(lab == 3)
    assert set(np.unique(lab[grown & (lab != 3)]).tolist()) <= {1, 2}
    assert (lab == 3).sum() < 0.05 * (lab == 1).sum()  # small


def test_lesions_are_fragmented_and_multifocal():
    n_components = []
    for seed in range(3):
        _, lab = make_phantom(seed=seed)
        n_components.append(ndimage.label(lab == 3, structure=np.ones((3, 3, 3)))[1])
    assert min(n_components) >= 2
    assert max(n_components) >= 3


def test_lesion_not_separable_by_an_intensity_threshold(default_phantom):
    vol, lab = default_phantom
    a = vol.array
    lesion = lab == 3
    # even knowing where the bone is, the best single threshold misses much of it
    region = (lab == 1) | lesion
    best = max(
        dice((a < t) & region, lesion) for t in np.quantile(a[region], np.linspace(0.002, 0.3, 80))
    )
    assert best < 0.8
    # and without that knowledge it is hopeless
    best_global = max(dice(a < t, lesion) for t in np.quantile(a, np.linspace(0.01, 0.99, 50)))
    assert best_global < 0.2


def test_artefact_switches_change_the_image():
    clean, lab = make_phantom(shape=SMALL, seed=2, noise_std=0, streaks=False, cupping=0, blur_mm=0)
    noisy, lab2 = make_phantom(shape=SMALL, seed=2)
    np.testing.assert_array_equal(lab, lab2)  # artefacts never move the ground truth
    soft = (lab == 0) & (clean.array == PhantomConfig().hu_soft)  # flat soft tissue, unblurred
    assert clean.array[soft].std() == 0.0
    assert noisy.array[soft].std() > 20.0
    streaky, _ = make_phantom(shape=SMALL, seed=2, noise_std=0, cupping=0, blur_mm=0)
    assert not np.allclose(streaky.array, clean.array)


def test_config_validation():
    with pytest.raises(InvalidVolumeError):
        PhantomConfig(shape=(4, 48, 48))
    with pytest.raises(InvalidVolumeError):
        PhantomConfig(spacing=(0.0, 0.3, 0.3))
    with pytest.raises(InvalidVolumeError):
        make_phantom(n_teeth=0)


def test_choose_slices_spreads_and_includes_lesion():
    _, lab = make_phantom(shape=SMALL, seed=1)
    picks = choose_annotated_slices(lab, 3, axis=0)
    assert len(picks) == 3
    assert any((lab[p] == 3).any() for p in picks)
    fg = np.flatnonzero((lab > 0).any(axis=(1, 2)))
    assert all(fg.min() <= p <= fg.max() for p in picks)
    assert max(picks) - min(picks) >= (fg.max() - fg.min()) // 3


def test_dataset_writer(tmp_path):
    cfg = PhantomConfig(shape=(24, 40, 40))
    root = make_phantom_dataset(
        tmp_path / "ds", 3, config=cfg, labelled_cases=2, slices_per_case=2, seed=7
    )
    names = ["phantom_000", "phantom_001", "phantom_002"]
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == [f"{n}.nii.gz" for n in names]
    assert sorted(p.name for p in (root / "labelsTr").iterdir()) == [
        f"{n}.nii.gz" for n in names[:2]
    ]
    cases = load_dataset(root, num_classes=4)
    assert [c.status.kind for c in cases] == ["partial", "partial", "unlabelled"]
    for case in cases[:2]:
        st = annotation_status(case.labels)
        assert st.axis == 0 and len(st.slices) == 2 and st.whole_slices
        gt = read_volume(root / "groundtruth" / f"{case.name}.nii.gz").array
        annotated = case.labels != 255
        np.testing.assert_array_equal(case.labels[annotated], gt[annotated])
        assert case.image.spacing == pytest.approx(cfg.spacing)
    # case i is phantom seed 7 + i
    _, lab8 = make_phantom(cfg, seed=8)
    np.testing.assert_array_equal(
        read_volume(root / "groundtruth" / "phantom_001.nii.gz").array, lab8
    )
    gts = [read_volume(root / "groundtruth" / f"{n}.nii.gz").array for n in names]
    assert not np.array_equal(gts[0], gts[1])
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"]["lesion"] == 3 and meta["labels"]["ignore"] == 255
