"""Smoke runs of the benchmark scripts (tiny phantoms, a few iterations) and their helpers.

Benchmarks are not tests: nothing here asserts a timing or a Dice value. What is checked is
that each script runs end to end through ``barl_core``, writes a results JSON with the
machine, the split and every planned run, renders its table and plot, resumes, and that the
pieces that decide what the engine sees (split, sparse labels, LA h5 loader) are right.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import common  # noqa: E402

TINY = (16, 24, 24)


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    """6 tiny phantoms in MSD layout, full labels under groundtruth/ (as make_phantom_dataset writes)."""
    from barl_core.data.phantom import PhantomConfig, make_phantom_dataset

    root = tmp_path_factory.mktemp("phantoms")
    return make_phantom_dataset(root / "phantoms", 6, config=PhantomConfig(shape=TINY), labelled_cases=6)


# ------------------------------------------------------------------ helpers


def test_split_is_fixed_disjoint_and_budgets_nest():
    names = [f"case_{i:03d}" for i in range(50)]
    a = common.make_split(names, n_test=10)
    b = common.make_split(list(reversed(names)), n_test=10)
    assert a == b  # independent of listing order
    assert len(a.test) == 10 and len(a.pool) == 40
    assert not set(a.test) & set(a.pool) and set(a.test) | set(a.pool) == set(names)
    assert common.make_split(names, 10, seed=1).test != a.test  # the seed matters
    five, ten = common.choose_labelled(a.pool, 0.05), common.choose_labelled(a.pool, 0.1)
    assert len(five) == 2 and len(ten) == 4 and set(five) <= set(ten)
    with pytest.raises(ValueError):
        common.make_split(names, n_test=50)


def test_sparse_labels_keep_only_foreground_slices():
    truth = np.zeros((20, 8, 8), np.uint8)
    truth[5:15, 2:6, 2:6] = 1
    truth[9, 3, 3] = 2
    slices = common.foreground_slices(truth, 3)
    assert len(slices) == 3 and all(5 <= s < 15 for s in slices)
    assert common.foreground_slices(truth, 1) == [10]
    sparse = common.sparsify(truth, slices)
    for z in range(20):
        if z in slices:
            np.testing.assert_array_equal(sparse[z], truth[z])
        else:
            assert (sparse[z] == common.IGNORE_INDEX).all()


def test_materialise_hides_unlabelled_cases(tmp_path):
    from barl_core.data.dataset import load_dataset
    from barl_core.io.volume import Volume

    rng = np.random.default_rng(0)
    cases, labels = {}, {}
    for i in range(3):
        truth = (rng.random((8, 8, 8)) > 0.5).astype(np.uint8)
        cases[f"c{i}"] = common.BenchCase(f"c{i}", Volume(rng.random((8, 8, 8)).astype(np.float32)), truth)
    labels["c0"] = common.sparsify(cases["c0"].truth, [2])
    labels["c1"] = cases["c1"].truth
    img_dir, lab_dir = common.materialise(cases, labels, tmp_path / "d")
    loaded = {c.name: c for c in load_dataset(img_dir, lab_dir)}
    assert loaded["c2"].labels is None
    np.testing.assert_array_equal(loaded["c0"].labels, labels["c0"])
    np.testing.assert_array_equal(loaded["c1"].labels, cases["c1"].truth)


def test_results_store_resumes_and_writes_machine(tmp_path):
    path = tmp_path / "r.json"
    store = common.ResultsStore.open(path, "x", resume=False, config={"a": 1})
    store.add_run("k1", {"v": float("nan")})
    data = json.loads(path.read_text())  # NaN written as null: valid JSON
    assert data["runs"]["k1"]["v"] is None
    machine = data["sessions"][0]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["torch"] and machine["command"]
    again = common.ResultsStore.open(path, "x", resume=True, config={"a": 1})
    assert again.has("k1") and len(again.data["sessions"]) == 2
    assert not common.ResultsStore.open(path, "x", resume=False, config={}).has("k1")


def test_markdown_table_and_mean_sd():
    assert common.fmt_mean_sd([1.0, 3.0], 2) == "2.00 ± 1.41"
    assert common.fmt_mean_sd([None, float("nan")]) == "n/a"
    table = common.markdown_table(["a", "bb"], [[1, 2], ["xyz", 4]])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| a ") and set(lines[1]) <= {"|", "-"}


# ------------------------------------------------------------------ Left Atrium h5


def _write_la(root: Path, n_train: int, n_test: int, shape_xyz=(24, 20, 16)) -> Path:
    """UA-MT layout: lists beside '2018LA_Seg_Training Set/<case>/mri_norm2.h5'."""
    import h5py

    cases_dir = root / "2018LA_Seg_Training Set"
    names = [f"CASE{i:02d}" for i in range(n_train + n_test)]
    rng = np.random.default_rng(1)
    for i, name in enumerate(names):
        (cases_dir / name).mkdir(parents=True)
        image = rng.normal(size=shape_xyz).astype(np.float32)
        label = np.zeros(shape_xyz, np.uint8)
        label[6:18, 5:15, 4:12] = 1
        image[label > 0] += 2.0
        image[0, 1, 2] = 100.0 + i  # a marker voxel at (x=0, y=1, z=2)
        with h5py.File(cases_dir / name / "mri_norm2.h5", "w") as fh:
            fh.create_dataset("image", data=image)
            fh.create_dataset("label", data=label)
    (root / "train.list").write_text("\n".join(names[:n_train]) + "\n")
    (root / "test.list").write_text("\n".join(names[n_train:]) + "\n\n")
    return cases_dir


def test_la_h5_loader_transposes_to_zyx_and_keeps_list_order(tmp_path):
    from benchmarks.la_h5 import GPU_PROTOCOL, find_la_layout, load_la_cases

    cases_dir = _write_la(tmp_path, 3, 2)
    for root in (tmp_path, cases_dir):  # either the list folder or the case folder
        layout = find_la_layout(root)
        assert layout.case_root == cases_dir
    cases, train, test = load_la_cases(tmp_path)
    assert train == ["CASE00", "CASE01", "CASE02"] and test == ["CASE03", "CASE04"]
    c = cases["CASE01"]
    assert c.image.shape == (16, 20, 24) and c.truth.shape == (16, 20, 24)  # (z, y, x)
    assert c.image.array[2, 1, 0] == pytest.approx(101.0)
    assert c.truth.dtype == np.uint8 and set(np.unique(c.truth)) == {0, 1}
    assert c.image.spacing == (1.0, 1.0, 1.0)
    assert GPU_PROTOCOL.patch == (80, 112, 112)  # literature's 112x112x80 (x, y, z)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        find_la_layout(tmp_path / "empty" / "nowhere")


def test_gpu_protocol_preset(tmp_path):
    from benchmarks import label_efficiency as le

    _write_la(tmp_path, 3, 2)
    args = le.parse_args(["--la-root", str(tmp_path), "--gpu-protocol"])
    assert args.patch == (80, 112, 112) and args.base_channels == 16 and args.budgets == "8,16"
    assert args.iterations == 6000 and args.device == "auto" and args.settings == "full"
    assert args.ablation is False
    with pytest.raises(SystemExit):
        le.parse_args(["--gpu-protocol"])


def test_label_efficiency_on_la_h5(tmp_path):
    from benchmarks import label_efficiency as le

    _write_la(tmp_path / "la", 4, 2)
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


# ------------------------------------------------------------------ scripts end to end


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


def test_active_learning_smoke(phantom_dir, tmp_path, capsys):
    """The documented protocol, tiny: round 0 alone, then two processes split by strategy that
    reuse it, then a merge; picks are never repeated and the merged summary has everything."""
    from benchmarks import active_learning as al
    from benchmarks import merge_results

    work = tmp_path / "work"
    base = ["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--cases", "2", "--k", "2",
            "--rounds", "2", "--seeds", "0", "--threads", "1", "--work-dir", str(work)]
    al.main(base + ["--round0-only"])
    assert len(list(work.glob("round0_*.pt"))) == 1
    capsys.readouterr()
    parts = [tmp_path / "a.json", tmp_path / "b.json"]
    al.main(base + ["--strategies", "focused,disagreement", "--out", str(parts[0]), "--plot", str(tmp_path / "al.png")])
    assert "round-0 model reused" in capsys.readouterr().out
    al.main(base + ["--strategies", "random,focused2", "--out", str(parts[1]), "--plot", ""])
    out = tmp_path / "al.json"
    merge_results.main([str(parts[0]), str(parts[1]), "--out", str(out)])
    data = json.loads(out.read_text())
    assert set(data["runs"]) == {"focused/seed0", "disagreement/seed0", "random/seed0", "focused2/seed0"}
    assert data["config"]["strategies"] == ["focused", "disagreement", "random", "focused2"]
    assert data["config"]["features"] and "focused2" in data["summary"]["answer"]
    # focused2 (a ranking preset, not the default yet) runs only when asked
    assert al.parse_args(["--smoke"]).strategies.split(",") == ["random", "entropy", "disagreement", "focused"]
    for run in data["runs"].values():
        curve = run["curve"]
        assert [p["n_slices"] for p in curve] == [2, 4, 6]
        picked = [tuple(x[:2]) for p in curve for x in p["picked"]]
        assert len(picked) == len(set(picked)) == 4  # never re-picked
        start = data["config"]["start_slices"]
        assert all(idx not in start[name] for name, idx in picked)
        assert all(len(x) == 5 for p in curve for x in p["picked"])  # each pick with its facts
    assert "random_final_dice" in data["summary"]["answer"]
    picks = data["summary"]["picks"]
    assert set(picks) == set(data["config"]["strategies"]) and all(v["picked"] == 4 for v in picks.values())
    advice = data["summary"]["advice"]
    assert set(advice) == set(data["runs"]) and all(len(v["actions"]) == 3 for v in advice.values())
    printed = capsys.readouterr().out
    assert "random reaches Dice" in printed and "What each strategy picked" in printed
    assert "Label more or stop" in printed
    assert (tmp_path / "al.png").is_file()
    # a different fine-tuning budget is refused by the merge
    other = json.loads(parts[1].read_text())
    other["config"]["finetune_iterations"] += 1
    parts[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="finetune_iterations"):
        merge_results.main([str(parts[0]), str(parts[1]), "--out", str(tmp_path / "x.json")])


def test_pick_stats_counts_empty_and_outside_slices():
    from benchmarks.active_learning import pick_facts, pick_stats

    truth = np.zeros((6, 4, 4), np.uint8)
    truth[2:4, 1:3, 1:3] = 1  # the structure spans z = 2..3, 4 voxels per slice
    runs = {"a/seed0": {"strategy": "a", "curve": [{"picked": []}, {"picked": [["c", 0, 0.9], ["c", 2, 0.5]]},
                                                   {"picked": [["c", 3, 0.4]]}]}}
    st = pick_stats(runs, {"c": truth})["a"]
    assert st == {"picked": 3, "with_foreground": 2, "outside_object": 1, "median_foreground_voxels": 4.0}
    # the same picks carrying their facts (as runs record them) need no truth
    with_facts = {"a/seed0": {"strategy": "a", "curve": [
        {"picked": [p + list(pick_facts(truth, p[1])) for p in pt["picked"]]} for pt in runs["a/seed0"]["curve"]]}}
    assert pick_stats(with_facts)["a"] == st
    with pytest.raises(ValueError):
        pick_stats(runs)


def _runs(key, dice):
    return {key: {"strategy": key.split("/")[0], "curve": [{"n_slices": 8 + 4 * i, "mean_fg_dice": d}
                                                          for i, d in enumerate(dice)]}}


def test_advice_along_curves_finds_the_flat_round_and_the_stop():
    from barl_core.workspace.advice import AdviceConfig
    from benchmarks.al_advice import advice_along_curves

    dice = [0.5, 0.7, 0.8, 0.9, 0.905, 0.906]
    v = advice_along_curves(_runs("a/seed0", dice), AdviceConfig(target_dice=0.85))["a/seed0"]
    assert v["flat_round"] == 3  # 0.9 is within 0.02 of the best, 0.8 is not
    # first round at the target with two small gains and >= 20 slices: round 5 (28 slices;
    # round 4 follows +0.1 with +0.005)
    assert v["stop_round"] == 5
    assert v["actions"][:5] == ["label-more"] * 5
    assert v["plateau_stop_round"] == 5 and not v["plateau_stop_early"] and not v["plateau_stop_late"]
    assert v["old_plateau_stop_round"] == 5  # the mean of two gains, 0.003
    # two falling versions below the target: the rule before stopped there (mean gain
    # -0.015), early, since the curve rises on; now a fall from the best is not flat
    v = advice_along_curves(_runs("b/seed0", [0.5, 0.6, 0.58, 0.57, 0.8]))["b/seed0"]
    assert v["stop_round"] is None and v["plateau_stop_round"] is None
    assert v["old_plateau_stop_round"] == 3 and v["old_plateau_stop_early"]
    assert v["flat_round"] == 4 == v["last_round"]


def test_advice_along_curves_flat_then_rising_does_not_stop_at_round_1():
    from benchmarks.al_advice import advice_along_curves, render_advice

    # flat for a version, then rising (the shape of 6 of the 10 stored runs)
    v = advice_along_curves(_runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812]))["c/seed0"]
    assert v["old_plateau_stop_round"] == 1 and v["old_plateau_stop_early"]
    assert v["flat_round"] == 3 and v["plateau_stop_round"] == 5 and not v["plateau_stop_early"]
    # a curve that flattened at round 1 and wobbles by more than 0.02: never stopped, late
    v = advice_along_curves(_runs("d/seed0", [0.5, 0.8, 0.77, 0.81, 0.78, 0.80]))["d/seed0"]
    assert v["flat_round"] == 1 and v["plateau_stop_round"] is None and v["plateau_stop_late"]
    table = render_advice(advice_along_curves(_runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812])))
    assert "| 5 " in table and "1 (early)" in table


def test_advice_only_replays_a_results_file_without_training(tmp_path):
    import json

    from benchmarks.active_learning import main

    path = tmp_path / "al.json"
    path.write_text(json.dumps({"runs": _runs("c/seed0", [0.5, 0.505, 0.51, 0.8, 0.81, 0.812]), "summary": {}}))
    assert main(["--advice-only", "--out", str(path)]) == 0
    advice = json.loads(path.read_text())["summary"]["advice"]["c/seed0"]
    assert advice["plateau_stop_round"] == 5 and advice["old_plateau_stop_round"] == 1


def test_slices_to_reach_interpolates_and_says_not_reached():
    from benchmarks.active_learning import slices_to_reach

    assert slices_to_reach([(8, 0.5), (12, 0.7), (16, 0.8)], 0.6) == pytest.approx(10.0)
    assert slices_to_reach([(8, 0.65), (12, 0.7)], 0.6) == 8.0
    assert slices_to_reach([(8, 0.5), (12, 0.55)], 0.6) is None


def test_speed_smoke(tmp_path, capsys):
    from benchmarks import speed

    out = tmp_path / "speed.json"
    speed.main(["--smoke", "--methods", "supervised,barl", "--out", str(out), "--plot", str(tmp_path / "s.png"),
                "--threads", "1"])
    data = json.loads(out.read_text())
    assert set(data["train"]["methods"]) == {"supervised", "barl"} and data["train"]["ratios"]["barl/supervised"] > 0
    for res in data["inference"]["precisions"].values():  # float32, and bfloat16 where native
        assert res["barl_core"]["median_s"] > 0 and res["monai"]["median_s"] > 0 and res["ratio_barl_core/monai"] > 0
    assert "float32" in data["inference"]["precisions"]
    options = data["options"]["options"]
    assert options["float32, no_grad"]["speedup"] == 1.0 and options["float32, channels_last_3d"]["max_softmax_change"] < 1e-3
    app = data["interactive"]
    assert app["slice_s"] > 0 and app["whole_s"] > 0 and app["job_status"] == "done"
    assert 0 <= app["slice_label_agreement"] <= 1 and 0 <= app["dice_auto"] <= 1
    assert data["large"]["size_zyx"] == [32, 32, 32] and data["large"]["target_spacing"] == [0.6, 0.6, 0.6]
    (mem,) = data["memory"]["volumes"]
    assert mem["size_zyx"] == [32, 32, 32] and mem["peak_rss_bytes"] >= mem["rss_with_volume_bytes"] > 0
    assert mem["estimate_bytes"] > mem["input_bytes"] == 32**3 * 4
    gui = data["gui"]
    assert "skipped" in gui or (gui["job_status"] == "done" and gui["training"]["ticks"] > 1)
    printed = capsys.readouterr().out
    assert "Training iteration time" in printed and "Peak memory" in printed and "current slice" in printed
    # a run of one part keeps the other parts' results and replaces its own
    speed.main(["--smoke", "--parts", "memory", "--sizes", "24x32x16", "--out", str(out), "--plot", "",
                "--threads", "1"])
    again = json.loads(out.read_text())
    assert again["train"] == data["train"] and again["gui"] == data["gui"] and again["interactive"] == app
    assert [v["size_zyx"] for v in again["memory"]["volumes"]] == [[24, 32, 16]]
    assert len(again["sessions"]) == 2


def test_report_fills_markers(tmp_path):
    from benchmarks import report

    results = tmp_path / "results"
    store = common.ResultsStore.open(results / "speed.json", "speed", resume=False, config={})
    store.set("train", {"patch_zyx": [8, 8, 8], "base_channels": 4, "batch_labeled": 1, "batch_unlabeled": 1,
                        "methods": {"supervised": {"median_s": 0.01}, "barl": {"median_s": 0.03}},
                        "ratios": {"barl/supervised": 3.0}})
    doc = tmp_path / "b.md"
    doc.write_text("x\n<!-- BEGIN:speed -->\nold\n<!-- END:speed -->\n"
                   "<!-- BEGIN:active_learning -->\nold\n<!-- END:active_learning -->\n")
    report.main(["--results", str(results), "--update", str(doc)])
    text = doc.read_text()
    assert "old" not in text and "| barl " in text and "3.00" in text
    assert "Not run yet" in text  # active_learning.json absent: said so, not invented


def test_iteration_profile_smoke(tmp_path):
    from benchmarks import iteration_profile

    out = tmp_path / "ip.json"
    assert iteration_profile.main(["--smoke", "--methods", "supervised,barl", "--out", str(out),
                                   "--work-dir", str(tmp_path)]) == 0
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"supervised", "barl", iteration_profile.NETWORK}
    phases = data["results"]["barl"]["phases_s"]
    assert {"sample", "views", "forward", "loss:sup", "loss:dpr", "loss:pcbc", "backward", "optimizer"} <= set(phases)
    assert "loss:dpr" not in data["results"]["supervised"]["phases_s"]
    assert set(data["ratios"]) >= {"supervised/network", "barl/supervised"}
    assert "| barl" in iteration_profile.render_table(data) and data["sessions"][-1]["finished"]


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
        assert all(0.0 <= p["dice"] <= 1.0 and p["seconds"] >= 0 for p in run["curve"])
        assert run["best_iteration"] in (1, 2) and run["iterations_done"] == 2
    assert (tmp_path / "le_curves.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="val-cases"):  # validation may not eat the labelled budget
        le.main(["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--budgets", "0.5", "--methods",
                 "supervised", "--seeds", "0", "--val-cases", "3", "--out", str(tmp_path / "x.json"), "--plot", ""])


def test_paired_differences_pair_by_seed():
    from benchmarks.active_learning import paired_differences

    def run(strategy, seed, dice):
        return {"strategy": strategy, "seed": seed,
                "curve": [{"round": i, "mean_fg_dice": d} for i, d in enumerate(dice)]}

    runs = {"f/0": run("focused", 0, [0.2, 0.5]), "r/0": run("random", 0, [0.2, 0.4]),
            "f/1": run("focused", 1, [0.2, 0.3]), "r/1": run("random", 1, [0.2, 0.1]),
            "f/2": run("focused", 2, [0.2, 0.9])}  # no random run for seed 2: left out
    diff = paired_differences(runs, "focused")
    assert [d["n"] for d in diff] == [2, 2]
    assert diff[1]["diff"] == pytest.approx(0.15) and diff[1]["sd"] == pytest.approx(np.std([0.1, 0.2], ddof=1))


def test_label_efficiency_per_seed_table_pairs_gaps_by_seed():
    from benchmarks.label_efficiency_parts.summary import render_per_seed

    names = ["background", "a", "b"]

    def run(variant, seed, dice):
        metrics = {c: {"dice": dice} for c in names[1:]}
        return {"setting": "sparse", "budget": "10%", "variant": variant, "seed": seed, "metrics": metrics}

    runs = {"b0": run("barl", 0, 0.80), "b1": run("barl", 1, 0.90),
            "s0": run("supervised", 0, 0.70), "s1": run("supervised", 1, 0.85),
            "c1": run("cps", 1, 0.95)}  # cps has no seed 0: its gap uses seed 1 only
    table = render_per_seed(runs, names)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and "method" not in line}
    assert rows["supervised"][:2] == ["0.700", "0.850"]
    assert rows["supervised"][3] == f"0.075 ± {np.std([0.10, 0.05], ddof=1):.3f} (n=2)"
    assert rows["cps"][0] == "" and rows["cps"][3] == "-0.050 (n=1)"
    assert rows["barl"][3] == ""


def test_label_efficiency_set_changes_only_the_named_settings_and_names_the_runs():
    from benchmarks.label_efficiency_parts.plan import Budget, RunSpec, build_plan, parse_overrides

    over = parse_overrides("pcbc=0.25, dpr=0.5,cps_weight=0.3")
    cfg = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                    num_classes=3, seed=0, overrides=dict(over))
    plain = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                      num_classes=3, seed=0)
    assert (cfg.losses.dpr, cfg.losses.pcbc, cfg.cps_weight) == (0.5, 0.25, 0.3)
    assert cfg.losses.pcbc_area_floor == plain.losses.pcbc_area_floor  # the preset's other settings stay
    assert cfg.losses.region == plain.losses.region and plain.losses.dpr != 0.5
    budget = Budget("10%", 17, 0.1)
    plan = build_plan([budget], ["sparse"], ["barl"], [0], upper=False, ablation=True,
                      ablation_budget=budget, pool_size=168, ablation_terms=("region",), overrides=over)
    assert [p.variant for p in plan] == ["barl [cps_weight=0.3,dpr=0.5,pcbc=0.25]",
                                         "barl -region [cps_weight=0.3,dpr=0.5,pcbc=0.25]"]
    assert RunSpec("main", budget, "sparse", "barl", 0).key not in {p.key for p in plan}
    with pytest.raises(SystemExit):
        parse_overrides("dpr")


def test_per_seed_gaps_go_to_the_reference_the_results_file_names(tmp_path):
    """``merge_results.py --reference`` makes the report pair every row with that variant."""
    from benchmarks import report

    names = ["background", "a"]

    def run(variant, seed, dice):
        return {"group": "main", "setting": "sparse", "budget": "10%", "budget_fraction": 0.1,
                "method": variant.split()[0], "variant": variant, "seed": seed,
                "metrics": {"a": {"dice": dice}}}

    runs = {"w0": run("barl [dpr=1]", 0, 0.84), "w1": run("barl [dpr=1]", 1, 0.83),
            "c0": run("cps", 0, 0.82), "c1": run("cps", 1, 0.80)}
    data = {"config": {"class_names": names, "reference": "barl [dpr=1]"}, "runs": runs}
    text = report.render_section("label_efficiency", data)
    assert "barl [dpr=1] minus it (paired)" in text
    cps = next(line for line in text.splitlines() if line.startswith("| cps"))
    assert f"0.025 ± {np.std([0.02, 0.03], ddof=1):.3f} (n=2)" in cps


def test_set_takes_mode_names_as_text():
    from benchmarks.label_efficiency_parts.plan import parse_overrides

    over = dict(parse_overrides("region_mode=contrast,dpr=1"))
    assert over == {"dpr": 1.0, "region_mode": "contrast"}
    cfg = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                    num_classes=3, seed=0, overrides=over)
    assert cfg.losses.region_mode == "contrast" and cfg.losses.dpr == 1.0
    with pytest.raises(SystemExit, match="needs a number"):
        parse_overrides("dpr=high")
