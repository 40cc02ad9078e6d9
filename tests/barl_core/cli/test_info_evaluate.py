"""``barl info`` and ``barl evaluate`` on generated data and on the real hippocampus set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from barl_core.cli.main import build_parser, main
from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.io.volume import Volume, read_volume, write_labels, write_volume


@pytest.fixture(scope="module")
def phantom_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    return make_phantom_dataset(
        root, 2, config=PhantomConfig(shape=(24, 40, 40)), labelled_cases=1, slices_per_case=2
    )


def test_help_lists_both_commands(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "evaluate" in out


def test_info_on_a_volume(tmp_path, capsys):
    vol = Volume(
        np.arange(60, dtype=np.float32).reshape(3, 4, 5),
        spacing=(2.0, 0.5, 0.25),
        origin=(1.0, 2.0, 3.0),
    )
    p = write_volume(vol, tmp_path / "v.nrrd")
    out_json = tmp_path / "info.json"
    assert main(["info", str(p), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "(3, 4, 5)" in out and "(2, 0.5, 0.25) mm" in out and "float32" in out
    assert "0 .. 59" in out
    data = json.loads(out_json.read_text())
    assert data["shape"] == [3, 4, 5] and data["max"] == 59.0
    assert data["percentiles"]["50.0"] == pytest.approx(29.5)
    assert "label_values" not in data


def test_info_on_a_label_map_and_dataset(phantom_ds, capsys):
    assert main(["info", str(phantom_ds / "labelsTr" / "phantom_000.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "label values:" in out and "255:" in out
    out_json = phantom_ds / "summary.json"
    assert main(["info", str(phantom_ds), "--num-classes", "4", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "2 cases (0 labelled, 1 partial, 1 unlabelled)" in out
    assert "partial: 2 slices on axis 0" in out
    rows = json.loads(out_json.read_text())["cases"]
    assert [r["status"] for r in rows] == ["partial", "unlabelled"]
    assert len(rows[0]["slices"]) == 2


def test_evaluate_folders_and_json(phantom_ds, tmp_path, capsys):
    gt_dir = phantom_ds / "groundtruth"
    pred_dir = tmp_path / "pred"
    for name in ("phantom_000", "phantom_001"):
        gt = read_volume(gt_dir / f"{name}.nii.gz")
        pred = gt.array.copy()
        if name == "phantom_001":
            pred[pred == 3] = 1  # miss every lesion
        write_labels(pred, gt, pred_dir / f"{name}_0000.nii.gz")
    out_json = tmp_path / "res" / "metrics.json"
    code = main(
        [
            "evaluate",
            "--pred",
            str(pred_dir),
            "--gt",
            str(gt_dir),
            "--json",
            str(out_json),
            "--classes",
            "1:bone",
            "2:tooth",
            "3:lesion",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "phantom_000" in out and "lesion" in out and "mean" in out
    res = json.loads(out_json.read_text())
    assert res["cases"]["phantom_000"]["classes"]["lesion"]["dice"] == 1.0
    assert res["cases"]["phantom_001"]["classes"]["lesion"]["dice"] == 0.0
    assert res["cases"]["phantom_001"]["classes"]["lesion"]["hd95"] is None  # NaN -> null
    assert res["classes"]["lesion"]["dice"] == pytest.approx(0.5)
    assert res["classes"]["lesion"]["hd95"] == 0.0  # the NaN case is skipped in the mean
    assert res["units"] == "mm"
    assert [p.name for p in out_json.parent.iterdir()] == ["metrics.json"]  # no temporary left


# ---------------------------------------------------------------- real data
def test_info_on_hippocampus(shared_data, capsys):
    images = shared_data / "hippocampus" / "imagesTr"
    if not images.is_dir():
        pytest.skip("hippocampus data not present")
    first = sorted(images.iterdir())[0]
    assert main(["info", str(first)]) == 0
    out = capsys.readouterr().out
    assert "shape (z, y, x)" in out and "percentiles" in out
    label = shared_data / "hippocampus" / "labelsTr" / first.name
    assert main(["info", str(label)]) == 0
    out = capsys.readouterr().out
    assert "label values:" in out and "2:" in out


def test_info_on_hippocampus_dataset(shared_data, capsys):
    root = shared_data / "hippocampus"
    if not root.is_dir():
        pytest.skip("hippocampus data not present")
    assert main(["info", str(root), "--num-classes", "3"]) == 0
    out = capsys.readouterr().out
    n = len(list((root / "imagesTr").glob("*.nii.gz")))
    assert f"{n} cases ({n} labelled, 0 partial, 0 unlabelled)" in out


def test_evaluate_on_hippocampus(shared_data, tmp_path, capsys):
    labels = shared_data / "hippocampus" / "labelsTr"
    if not labels.is_dir():
        pytest.skip("hippocampus data not present")
    names = sorted(p.name for p in labels.glob("*.nii.gz"))[:3]
    pred_dir = tmp_path / "pred"
    eroded = {}
    for name in names:
        gt = read_volume(labels / name)
        pred = gt.array.copy()
        inner = ndimage.binary_erosion(pred == 1)
        pred[(pred == 1) & ~inner] = 0  # peel one voxel off the anterior part
        eroded[name] = pred
        write_labels(pred, gt, pred_dir / name)
    out_json = tmp_path / "hippo.json"
    assert (
        main(["evaluate", "--pred", str(pred_dir), "--gt", str(labels), "--json", str(out_json)])
        == 0
    )
    out = capsys.readouterr().out
    assert "no prediction for" in out  # the other cases are reported, not failed
    res = json.loads(out_json.read_text())
    assert sorted(res["cases"]) == sorted(n[: -len(".nii.gz")] for n in names)
    assert res["classes"]["2"]["dice"] == 1.0  # posterior untouched
    d1 = res["classes"]["1"]["dice"]
    assert 0.2 < d1 < 1.0
    # 1 mm spacing, one voxel peeled: surfaces move by at most a voxel diagonal
    assert 0.0 < res["classes"]["1"]["hd95"] <= math.sqrt(3) + 1e-6
    assert not math.isnan(res["mean"]["asd"])
