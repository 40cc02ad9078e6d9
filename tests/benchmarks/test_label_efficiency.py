"""``label_efficiency.py`` end to end at tiny sizes: the LA GPU protocol, resume, merge, validation."""

from __future__ import annotations

import json

import pytest


def test_gpu_protocol_preset(write_la, tmp_path):
    from benchmarks import label_efficiency as le

    write_la(tmp_path, 3, 2)
    args = le.parse_args(["--la-root", str(tmp_path), "--gpu-protocol"])
    assert args.patch == (80, 112, 112) and args.base_channels == 16 and args.budgets == "8,16"
    assert args.iterations == 6000 and args.device == "auto" and args.settings == "full"
    assert args.ablation is False
    with pytest.raises(SystemExit):
        le.parse_args(["--gpu-protocol"])


def test_label_efficiency_on_la_h5(write_la, tmp_path):
    from benchmarks import label_efficiency as le

    write_la(tmp_path / "la", 4, 2)
    out = tmp_path / "la.json"
    le.main(["--la-root", str(tmp_path / "la"), "--gpu-protocol", "--smoke", "--patch", "16", "16", "16",
             "--base-channels", "4", "--iterations", "2", "--budgets", "2", "--methods", "barl",
             "--seeds", "0", "--no-upper", "--device", "cpu", "--out", str(out), "--plot", ""])
    data = json.loads(out.read_text())
    assert data["config"]["distance_units"] == "voxels" and data["config"]["patch_zyx"] == [16, 16, 16]
    (run,) = data["runs"].values()
    assert run["n_labelled"] == 2 and set(run["per_case"]) == {"CASE04", "CASE05"}
    assert set(run["metrics"]["left_atrium"]) >= {"dice", "jaccard", "hd95", "asd"}
    assert data["split"]["labelled"]["2lab"] == ["CASE00", "CASE01"]  # the first N of train.list


def test_label_efficiency_smoke_and_resume(phantom_dir, tmp_path, capsys):
    from benchmarks import label_efficiency as le
    from benchmarks.label_efficiency_parts.summary import summarise

    out, png = tmp_path / "le.json", tmp_path / "le.png"
    argv = ["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--budgets", "0.5",
            "--settings", "sparse", "--methods", "supervised,barl", "--seeds", "0,1",
            "--ablation-terms", "dpr", "--out", str(out), "--plot", str(png)]
    le.main(argv)
    data = json.loads(out.read_text())
    # 2 seeds x (2 methods + upper bound + 1 ablation)
    assert len(data["runs"]) == 8
    assert set(data["split"]["test"]).isdisjoint(data["split"]["pool"]) and len(data["split"]["test"]) == 2
    for run in data["runs"].values():
        assert not set(run["per_case"]) & set(data["split"]["pool"])  # scored on the test set only
    rows = {(r["group"], r["variant"]): r for r in data["summary"]}
    assert rows[("main", "barl")]["seeds"] == [0, 1] and ("upper", "full-supervision") in rows
    assert ("ablation", "barl -dpr") in rows
    assert rows[("main", "barl")]["mean_fg_dice"]["n"] == 2
    printed = capsys.readouterr().out
    assert "estimate" in printed and "Ablation" in printed and "full-supervision" in printed
    assert png.stat().st_size > 1000
    mtime = out.stat().st_mtime_ns
    le.main(argv + ["--resume"])  # nothing left to do: same runs, one more session
    again = json.loads(out.read_text())
    assert again["runs"].keys() == data["runs"].keys() and len(again["sessions"]) == 2
    assert out.stat().st_mtime_ns >= mtime
    with pytest.raises(SystemExit, match="iterations"):  # another schedule is not mixed in
        le.main(argv + ["--resume", "--iterations", "3"])

    # the same runs written by two processes (one per seed) merge back into the same tables
    from benchmarks import merge_results

    parts = []
    for seed in (0, 1):
        part = json.loads(json.dumps(again))
        part["runs"] = {k: r for k, r in again["runs"].items() if r["seed"] == seed}
        part["config"]["seeds"] = [seed]
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(part))
        parts.append(path)
    merge_results.main([str(parts[0]), str(parts[1]), "--out", str(tmp_path / "merged.json")])
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["runs"].keys() == again["runs"].keys() and merged["config"]["seeds"] == [0, 1]
    assert merged["summary"] == json.loads(json.dumps(summarise(again["runs"], again["config"]["class_names"])))
    with pytest.raises(SystemExit, match="both files hold"):
        merge_results.main([str(parts[0]), str(parts[0]), "--out", str(tmp_path / "x.json")])
    other = json.loads(parts[1].read_text())
    other["config"]["iterations"] += 1
    parts[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="iterations"):
        merge_results.main([str(parts[0]), str(parts[1]), "--out", str(tmp_path / "x.json")])


def test_label_efficiency_validates_on_held_out_cases(phantom_dir, tmp_path):
    from benchmarks import label_efficiency as le

    out, png = tmp_path / "le.json", tmp_path / "le.png"
    le.main(["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--budgets", "0.5", "--settings", "sparse",
             "--methods", "supervised", "--seeds", "0", "--no-ablation", "--val-cases", "1", "--val-every", "1",
             "--out", str(out), "--plot", str(png)])
    data = json.loads(out.read_text())
    (val,) = data["split"]["validation"]
    assert val in data["split"]["pool"] and all(val not in v for v in data["split"]["labelled"].values())
    assert len(data["runs"]) == 2  # supervised + the upper bound, both validated
    for run in data["runs"].values():
        assert [p["iteration"] for p in run["curve"]] == [1, 2]
        # sparse runs also score the pseudo-labels on the unannotated voxels of the labelled cases
        assert ("pseudo_dice_a" in run["curve"][0]) == (run["setting"] == "sparse")
        # the validator's over-reach travels with the curve (broken runs validate well on sparse slices)
        assert all(0.0 <= p["overreach"] <= 1.0 for p in run["curve"])
        assert all(0.0 <= p["dice"] <= 1.0 and p["seconds"] >= 0 for p in run["curve"])
        assert run["best_iteration"] in (1, 2) and run["iterations_done"] == 2
    assert (tmp_path / "le_curves.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="val-cases"):  # validation may not eat the labelled budget
        le.main(["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--budgets", "0.5", "--methods",
                 "supervised", "--seeds", "0", "--val-cases", "3", "--out", str(tmp_path / "x.json"), "--plot", ""])
