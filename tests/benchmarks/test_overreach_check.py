"""benchmarks/overreach_check.py: a trained model scored on sparse slices, every voxel, and over-reach."""

from __future__ import annotations

from benchmarks import common, overreach_check


def test_overreach_check_scores_a_model_end_to_end(phantom_dir, tmp_path, capsys):
    from benchmarks.label_efficiency_parts.dataset import load_msd

    ds = load_msd(phantom_dir, 2)
    cfg = common.build_train_config(method="supervised", iterations=2, patch=[16, 16, 16], base_channels=4,
                                    num_classes=len(ds.class_names), seed=0, class_names=ds.class_names)
    model, _ = common.train_model(cfg, phantom_dir / "imagesTr", phantom_dir / "groundtruth", tmp_path / "run")
    scores = overreach_check.score_model(model, [ds.cases[n] for n in ds.test])
    assert set(scores) == {"sparse_dice", "full_dice", "overreach"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert overreach_check.main([str(model), "--data", str(phantom_dir), "--n-test", "2", "--cases", "2"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if str(model) in line][0]
    assert row.count("|") == 5 and f"{scores['overreach']:.3f}" in row
