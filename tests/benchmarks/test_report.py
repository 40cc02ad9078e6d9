"""``report.py``: the docs' marker blocks filled from results files."""

from __future__ import annotations

import numpy as np

from benchmarks import common


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
