"""``active_learning.py``: the documented protocol at tiny sizes, and its pick and curve statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest


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
        assert [p["n_slices"] for p in curve] == [6, 8, 10]  # 2 cases x 3 start slices, then K=2 a round
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


def test_slices_to_reach_interpolates_and_says_not_reached():
    from benchmarks.active_learning import slices_to_reach

    assert slices_to_reach([(8, 0.5), (12, 0.7), (16, 0.8)], 0.6) == pytest.approx(10.0)
    assert slices_to_reach([(8, 0.65), (12, 0.7)], 0.6) == 8.0
    assert slices_to_reach([(8, 0.5), (12, 0.55)], 0.6) is None


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


def test_picking_from_the_whole_pool_reaches_unlabelled_cases(phantom_dir, tmp_path):
    """``--pick-from pool``: the strategies may pick slices of cases nobody annotated, which then
    become labelled cases; without it only the annotated cases are ever picked from."""
    from benchmarks import active_learning as al

    base = ["--smoke", "--data", str(phantom_dir), "--n-test", "2", "--cases", "1", "--pool", "4", "--k", "3",
            "--rounds", "1", "--seeds", "0", "--threads", "1", "--strategies", "random,focused", "--plot", ""]
    al.main(base + ["--pick-from", "pool", "--out", str(tmp_path / "pool.json")])
    data = json.loads((tmp_path / "pool.json").read_text())
    annotated_case = data["config"]["cases"][0]
    assert data["config"]["pick_from"] == "pool"
    for run in data["runs"].values():
        assert len(run["annotated"]) == 4  # every pool case is a candidate
        picked = {x[0] for x in run["curve"][1]["picked"]}
        assert len(run["curve"][1]["picked"]) == 3
        if run["strategy"] == "random":  # 3 picks among 4 cases: at least one unannotated case is new
            assert picked - {annotated_case}
    al.main(base + ["--out", str(tmp_path / "annotated.json")])
    data = json.loads((tmp_path / "annotated.json").read_text())
    assert "pick_from" not in data["config"]
    for run in data["runs"].values():
        assert {x[0] for x in run["curve"][1]["picked"]} == {annotated_case}
