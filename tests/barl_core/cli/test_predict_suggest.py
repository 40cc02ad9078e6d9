"""``barl predict`` and ``barl suggest`` end to end on a small (untrained) checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict

import nibabel as nib
import numpy as np
import pytest
import torch

from barl_core.cli.main import main
from barl_core.io.volume import Volume, read_volume, write_labels, write_volume
from barl_core.networks.unet import BiBranchNet, NetworkConfig
from barl_core.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = NetworkConfig(num_classes=3, base_channels=4, proj_dim=4, depth=3)
    ckpt = {
        "method": "barl", "n_branches": 2, "model_state": BiBranchNet(cfg).state_dict(), "network": asdict(cfg),
        "class_names": ["background", "tooth", "lesion"], "ignore_index": 255, "normalization": None,
        "norm_config": {"lower_percentile": 0.5, "upper_percentile": 99.5, "mode": "percentile_zscore"},
        "target_spacing": None, "patch_size": [8, 12, 12], "iteration": 1, "total_iterations": 1,
        "config": {}, "optimizer_state": None, "scaler_state": None, "rng_state": None, "history": [],
    }
    model = save_checkpoint(root / "model.pt", ckpt)
    rng = np.random.default_rng(0)
    for i in range(2):
        vol = Volume(rng.normal(0, 50, (10, 13, 12)).astype(np.float32), spacing=(1.0, 0.5, 0.5), origin=(i, 2.0, 3.0))
        write_volume(vol, root / "imagesTr" / f"case_{i}.nii.gz")
        if i == 0:
            lab = np.full(vol.shape, 255, np.uint8)
            lab[[2, 7]] = 0
            write_labels(lab, vol, root / "labelsTr" / "case_0.nii.gz")
    return root, model


def test_predict_file_and_folder(setup, tmp_path, capsys):
    root, model = setup
    src = root / "imagesTr" / "case_1.nii.gz"
    out = tmp_path / "seg.nii.gz"
    dis = tmp_path / "dis.nii.gz"
    assert main(["predict", "--model", str(model), "--image", str(src), "--out", str(out),
                 "--disagreement", str(dis), "--device", "cpu"]) == 0
    ref = nib.load(str(src))
    for p in (out, dis):
        np.testing.assert_allclose(nib.load(str(p)).affine, ref.affine, atol=1e-5)
    assert read_volume(out).array.dtype == np.uint8
    assert main(["predict", "--model", str(model), "--image", str(root / "imagesTr"), "--out",
                 str(tmp_path / "all"), "--device", "cpu", "--overlap", "0.25"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["case_0.nii.gz", "case_1.nii.gz"]
    assert "labels ->" in capsys.readouterr().out
    # several inputs into one file name: a clear error (exit code 2)
    assert main(["predict", "--model", str(model), "--image", str(root / "imagesTr"), "--out",
                 str(tmp_path / "x.nii.gz"), "--device", "cpu"]) == 2
    assert main(["predict", "--model", str(tmp_path / "nope.pt"), "--image", str(src), "--out",
                 str(tmp_path / "y"), "--device", "cpu"]) == 2


@pytest.mark.parametrize("strategy", ["focused", "disagreement", "entropy", "random"])
def test_suggest_ranks_cases_and_skips_annotated_slices(setup, tmp_path, capsys, strategy):
    root, model = setup
    out = tmp_path / "s.json"
    assert main(["suggest", "--model", str(model), "--images", str(root / "imagesTr"), "--top", "3",
                 "--strategy", strategy, "--device", "cpu", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["strategy"] == strategy and len(doc["cases"]) == 2
    by_name = {c["name"]: c for c in doc["cases"]}
    assert by_name["case_0"]["annotated_slices"] == 2  # labels found beside imagesTr
    picked = [s["index"] for s in by_name["case_0"]["suggestions"]]
    assert picked and not {2, 7} & set(picked)
    gains = [c["gain"] for c in doc["cases"]]
    assert gains == sorted(gains, reverse=True)
    text = capsys.readouterr().out
    assert "case_0" in text and "case_1" in text
    if strategy == "focused":  # each pick explained, and the profile says what it shows
        assert all(s["reason"] for s in by_name["case_0"]["suggestions"])
        assert by_name["case_0"]["slice_profile_label"].startswith("disagreement on the structure")
        # the app's ranking: with the prediction's per-slice features, and a reason per case
        for c in doc["cases"]:
            assert c["features"] is True and c["case_reason"] == c["suggestions"][0]["reason"]
            assert c["best_slice"] == c["suggestions"][0]["index"]


def test_suggest_help_lists_every_strategy_and_the_default(capsys):
    from barl_core.active.suggest import DEFAULT_STRATEGY, STRATEGIES

    with pytest.raises(SystemExit):
        main(["suggest", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in STRATEGIES)
    assert f"{DEFAULT_STRATEGY}" in text and "(default)" in text
