"""Plots of a label-efficiency results file: Dice against the budget, learning curves."""

from __future__ import annotations

from pathlib import Path

from benchmarks import common

from .plan import METHODS

__all__ = ["plot", "plot_curves"]


def plot(summary: list[dict], path: Path, title: str) -> None:
    """Mean foreground Dice against the labelled budget, one line per method and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    main = [r for r in summary if r["group"] == "main"]
    variants = sorted({(r["variant"], r["setting"]) for r in main})
    colours = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for variant, setting in variants:
        pts = sorted((r["budget_fraction"] * 100, r["mean_fg_dice"]) for r in main
                     if r["variant"] == variant and r["setting"] == setting)
        pts = [(x, s) for x, s in pts if s.get("n")]
        if not pts:
            continue
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["sd"] for p in pts],
                    marker="o" if setting == "full" else "s", linestyle="-" if setting == "full" else "--",
                    color=colours.get(variant, None), capsize=3, label=f"{variant} ({setting})")
    for r in summary:
        if r["group"] == "upper" and r["mean_fg_dice"].get("n"):
            ax.axhline(r["mean_fg_dice"]["mean"], color="k", linestyle=":", label="all labels (supervised)")
    common.finish_dice_plot(fig, ax, path, xlabel="labelled cases (% of training pool)", title=title,
                            fontsize=7, ncol=2)


def plot_curves(runs: dict, path: Path, title: str) -> None:
    """Validation Dice against iterations and wall time, one line per run, a colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours: dict[str, str] = {}
    for _key, run in sorted(runs.items()):
        curve = run.get("curve") or []
        if not curve:
            continue
        name = f"{run['variant']} ({run['setting']} {run['budget']})"
        label = None if name in colours else name  # one legend entry per method and setting
        colour = colours.setdefault(name, f"C{len(colours) % 10}")
        its = [p["iteration"] for p in curve]
        secs = [p["seconds"] / 60 for p in curve]
        dice = [p["dice"] for p in curve]
        axes[0].plot(its, dice, color=colour, label=label, alpha=0.8)
        axes[1].plot(secs, dice, color=colour, alpha=0.8)
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("wall time (min, shared 2-core machine)")
    axes[0].set_ylabel("validation mean foreground Dice")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    common.save_figure(fig, path)
