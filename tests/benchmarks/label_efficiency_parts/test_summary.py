"""The per-seed table: each method's gap to the reference, paired by seed."""

from __future__ import annotations

import numpy as np


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


def test_ablation_table_references_the_complete_method_at_the_same_overrides():
    from benchmarks.label_efficiency_parts.summary import render_tables

    names = ["background", "a"]

    def row(group, variant, dice):
        stat = {"n": 1, "mean": dice, "sd": 0.0}
        return {"group": group, "setting": "sparse", "budget": "10%", "budget_fraction": 0.1,
                "variant": variant, "seeds": [0], "metrics": {"a": {"dice": stat, "hd95": stat, "asd": stat}}}

    summary = [row("main", "barl", 0.70), row("main", "barl [dpr=1]", 0.80),
               row("ablation", "barl -dpr [dpr=1]", 0.60)]
    ablation = render_tables(summary, names).split("### Ablation")[1]
    methods = [line.split("|")[3].strip() for line in ablation.splitlines() if line.startswith("| sparse")]
    assert methods == ["barl [dpr=1]", "barl -dpr [dpr=1]"]
