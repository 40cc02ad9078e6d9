"""Markdown tables, the answer in words and the plot of an active-learning summary.

Why apart: ``report.py`` renders them into docs/benchmarks.md and ``replot.py`` redraws the plot
from a stored results file, without running anything.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import common

__all__ = ["render_per_seed", "render_picks", "answer_text", "render_table", "plot"]


def render_per_seed(runs: dict) -> str:
    """Every run's curve: test Dice per round (one row per strategy and seed)."""
    rounds = sorted({p["round"] for r in runs.values() for p in r["curve"]})
    rows = []
    for key in sorted(runs, key=lambda k: (runs[k]["strategy"], runs[k]["seed"])):
        by_round = {p["round"]: p["mean_fg_dice"] for p in runs[key]["curve"]}
        rows.append([key] + ["n/a" if by_round.get(r) is None else f"{by_round[r]:.3f}" for r in rounds])
    return "### Per seed (test Dice by round)\n\n" + common.markdown_table(["run"] + [f"r{r}" for r in rounds], rows)


def render_picks(picks: dict) -> str:
    rows = [[s, str(v["picked"]), str(v["with_foreground"]), str(v["outside_object"]),
             "n/a" if v["median_foreground_voxels"] is None else f"{v['median_foreground_voxels']:.0f}"]
            for s, v in picks.items()]
    return "### What each strategy picked (all rounds and seeds)\n\n" + common.markdown_table(
        ["strategy", "slices picked", "with foreground", "outside the structure's z-extent",
         "median foreground voxels"], rows)


def answer_text(summary: dict) -> str:
    a = summary["answer"]
    if "random_final_dice" not in a:
        return "No 'random' curve: the saving cannot be computed."
    lines = [f"random reaches Dice {a['random_final_dice']:.3f} with {a['random_final_slices']:.0f} annotated slices."]
    for s, v in a.items():
        if not isinstance(v, dict):
            continue
        paired = [p for p in v.get("paired_vs_random", []) if p["round"] > 0 and p["n"]]
        if paired:
            lines.append(f"{s} minus random, same seed, per round (mean ± sd over {paired[0]['n']} seed(s)): "
                         + ", ".join(f"r{p['round']} {p['diff']:+.3f} ± {p['sd']:.3f}" for p in paired) + ".")
        if v["reached"]:
            lines.append(f"{s} reaches it with {v['slices_to_reach']:.1f} slices: {v['slices_saved']:.1f} "
                         f"fewer ({100 * v['fraction_saved']:.0f}% saved).")
        else:
            lines.append(f"{s} does not reach it within the rounds run (final Dice {v['final_dice']:.3f}): "
                         "not reached, no saving can be claimed.")
    return "\n".join(lines)


def render_table(summary: dict) -> str:
    curves = summary["curves"]
    strategies = list(curves)
    rounds = sorted({p["round"] for c in curves.values() for p in c})
    headers = ["round", "slices"] + [f"Dice {s}" for s in strategies]
    rows = []
    for rnd in rounds:
        row = [str(rnd)]
        n = next((p["n_slices"] for c in curves.values() for p in c if p["round"] == rnd), float("nan"))
        row.append(f"{n:.0f}")
        for s in strategies:
            pt = next((p for p in curves[s] if p["round"] == rnd), None)
            if pt is None or not pt["n"]:
                row.append("n/a")
            elif pt["n"] > 1:
                row.append(f"{pt['dice']:.3f} ± {pt['sd']:.3f}")
            else:
                row.append(f"{pt['dice']:.3f}")
        rows.append(row)
    return "### Active learning (mean foreground Dice, test set)\n\n" + common.markdown_table(headers, rows)


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, (s, curve) in enumerate(summary["curves"].items()):
        pts = [p for p in curve if p["n"]]
        if not pts:
            continue
        ax.errorbar([p["n_slices"] for p in pts], [p["dice"] for p in pts], yerr=[p["sd"] for p in pts],
                    marker="o", capsize=3, color=f"C{i}", label=s)
    a = summary["answer"]
    if "random_final_dice" in a:
        ax.axhline(a["random_final_dice"], color="grey", linestyle=":", label="random, final")
    common.finish_dice_plot(fig, ax, path, xlabel="annotated axial slices", title=title, fontsize=8)
