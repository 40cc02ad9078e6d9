"""Metrics against hand-computed cases and MONAI's independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from barl_core.errors import EmptyDatasetError, GeometryMismatchError
from barl_core.evaluation.metrics import (
    average_surface_distance,
    binary_metrics,
    dice,
    evaluate_case,
    evaluate_folders,
    hd95,
    jaccard,
    match_files,
    surface_distances,
)
from barl_core.io.volume import Volume, write_labels


def _blobs(seed: int, shape=(18, 22, 20)) -> np.ndarray:
    r = np.random.default_rng(seed)
    return ndimage.gaussian_filter(r.random(shape), 2.0) > 0.5


def test_dice_and_jaccard_by_hand():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :3] = True  # 3 voxels
    b[0, 0, 1:] = True  # 3 voxels, 2 shared
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert jaccard(a, b) == pytest.approx(2 / 4)


def test_distances_by_hand_with_anisotropic_spacing():
    a = np.zeros((5, 5, 5), bool)
    b = np.zeros((5, 5, 5), bool)
    a[1, 2, 2] = True
    b[4, 2, 2] = True  # 3 voxels apart along z
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert average_surface_distance(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)  # voxel units
    # a cube against the same cube grown by one voxel: every gt surface voxel is 1 away
    cube = np.zeros((9, 9, 9), bool)
    cube[3:6, 3:6, 3:6] = True
    big = np.zeros_like(cube)
    big[2:7, 2:7, 2:7] = True
    d_pred, d_gt = surface_distances(big, cube, (1.0, 1.0, 1.0))
    assert d_gt.max() == pytest.approx(1.0)
    assert d_pred.max() == pytest.approx(math.sqrt(3))  # corner of the big cube


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.6, 0.9)])
@pytest.mark.parametrize("seeds", [(0, 1), (2, 3)])
def test_matches_monai(spacing, seeds):
    from monai.metrics import (
        DiceMetric,
        compute_average_surface_distance,
        compute_hausdorff_distance,
    )

    pred, gt = _blobs(seeds[0]), _blobs(seeds[1])
    t = lambda m: torch.from_numpy(m[None, None].astype(np.float32))  # noqa: E731
    ref_hd = float(compute_hausdorff_distance(t(pred), t(gt), percentile=95, spacing=spacing))
    ref_asd = float(
        compute_average_surface_distance(t(pred), t(gt), symmetric=True, spacing=spacing)
    )
    ref_dice = float(DiceMetric(include_background=True)(t(pred), t(gt)))
    m = binary_metrics(pred, gt, spacing)
    assert m["hd95"] == pytest.approx(ref_hd, rel=1e-5)
    assert m["asd"] == pytest.approx(ref_asd, rel=1e-5)
    assert m["dice"] == pytest.approx(ref_dice, rel=1e-5)
    assert hd95(pred, gt, spacing) == m["hd95"]


def test_empty_masks():
    empty = np.zeros((4, 4, 4), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    both = binary_metrics(empty, empty)
    assert both == {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0, "asd": 0.0}
    for p, g in [(one, empty), (empty, one)]:
        m = binary_metrics(p, g)
        assert m["dice"] == 0.0 and m["jaccard"] == 0.0
        assert math.isnan(m["hd95"]) and math.isnan(m["asd"])


def test_evaluate_case_per_class_and_ignore():
    gt = np.zeros((6, 8, 8), np.uint8)
    gt[1:5, 2:6, 2:6] = 1
    gt[2:4, 3:5, 3:5] = 2
    pred = gt.copy()
    pred[0, 0, 0] = 2  # a false positive of class 2 ...
    res = evaluate_case(pred, gt, (1.0, 1.0, 1.0))
    assert set(res["classes"]) == {"1", "2"}
    assert res["classes"]["1"]["dice"] == 1.0
    assert res["classes"]["2"]["dice"] < 1.0
    sparse = gt.copy()
    sparse[0] = 255  # ... on a slice nobody annotated: left out
    res = evaluate_case(pred, sparse, (1.0, 1.0, 1.0), classes={1: "outer", 2: "inner"})
    assert res["classes"]["inner"]["dice"] == 1.0 and res["classes"]["inner"]["hd95"] == 0.0
    assert res["mean"]["dice"] == 1.0
    # a class absent from both maps is perfect, present in one is NaN for distances
    res = evaluate_case(pred, gt, classes=[3])
    assert res["classes"]["3"]["dice"] == 1.0
    with pytest.raises(GeometryMismatchError):
        evaluate_case(pred[:3], gt)


def test_evaluate_case_uses_volume_spacing():
    gt = np.zeros((5, 5, 5), np.uint8)
    gt[1, 2, 2] = 1
    pred = np.zeros_like(gt)
    pred[3, 2, 2] = 1
    vol = Volume(gt, spacing=(4.0, 1.0, 1.0))
    res = evaluate_case(vol.with_array(pred), vol)
    assert res["classes"]["1"]["hd95"] == pytest.approx(8.0)
    assert evaluate_case(pred, gt, (1, 1, 1))["classes"]["1"]["hd95"] == pytest.approx(2.0)


def test_folder_evaluation_matches_names(tmp_path):
    ref = Volume(np.zeros((6, 7, 8), np.float32), spacing=(2.0, 1.0, 1.0))
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    rng = np.random.default_rng(0)
    truths = {}
    for name in ("a", "b", "c"):
        lab = (rng.random(ref.shape) > 0.6).astype(np.uint8)
        truths[name] = lab
        write_labels(lab, ref, gt_dir / f"{name}.nii.gz")
    write_labels(truths["a"], ref, pred_dir / "a_0000.nii.gz")  # nnU-Net style name
    write_labels(1 - truths["b"], ref, pred_dir / "b.nii.gz")
    write_labels(truths["b"], ref, pred_dir / "zzz.nii.gz")  # no ground truth
    pairs, missing, extra = match_files(pred_dir, gt_dir)
    assert [p[0] for p in pairs] == ["a", "b"] and missing == ["c"] and extra == ["zzz"]
    res = evaluate_folders(pred_dir, gt_dir)
    assert res["cases"]["a"]["classes"]["1"]["dice"] == 1.0
    assert res["cases"]["b"]["classes"]["1"]["dice"] == 0.0
    assert res["classes"]["1"]["dice"] == pytest.approx(0.5)
    assert res["classes"]["1"]["n"] == 2
    assert res["units"] == "mm"
    assert evaluate_folders(pred_dir, gt_dir, voxel_units=True)["units"] == "voxel"
    # two single files are compared whatever their names
    single = evaluate_folders(pred_dir / "zzz.nii.gz", gt_dir / "b.nii.gz")
    assert single["classes"]["1"]["dice"] == 1.0
    empty = tmp_path / "gt_empty"
    empty.mkdir()
    with pytest.raises(EmptyDatasetError):
        evaluate_folders(pred_dir, empty)
