"""Label-efficiency results grouped over seeds, and their markdown tables.

Why apart: ``report.py``, ``merge_results.py`` and ``replot.py`` rebuild the summary and the
tables from a stored results file without running anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import common

from .plan import METHODS

__all__ = ["summarise", "mean_fg_dice", "render_tables", "render_per_seed"]


def _class_keys(ds_classes: Sequence[str]) -> list[str]:
    return [str(c) for c in ds_classes[1:]]


def _metric(run: dict, cls: str, metric: str) -> float | None:
    mean = run.get("metrics", {})
    # metrics may be keyed by class name or index; try both
    for key in (cls, str(cls)):
        if key in mean and metric in mean[key]:
            return mean[key][metric]
    return None


def summarise(runs: dict, class_names: Sequence[str]) -> list[dict]:
    """Group runs over seeds: one row per (group, setting, budget, variant), mean ± sd."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs.values():
        k = (run["group"], run["setting"], run["budget"], run["variant"])
        groups.setdefault(k, []).append(run)
    rows = []
    for (group, setting, budget, variant), items in groups.items():
        row = {
            "group": group,
            "setting": setting,
            "budget": budget,
            "budget_fraction": items[0]["budget_fraction"],
            "variant": variant,
            "seeds": sorted(r["seed"] for r in items),
            "metrics": {},
        }
        for cls in _class_keys(class_names):
            row["metrics"][cls] = {}
            for m in common.FOREGROUND_METRICS:
                vals = [_metric(r, cls, m) for r in items]
                mu, sd, n = common.mean_sd(vals)
                row["metrics"][cls][m] = {"mean": mu, "sd": sd, "n": n}
        fg = [mean_fg_dice(r, class_names) for r in items]
        mu, sd, n = common.mean_sd(fg)
        row["mean_fg_dice"] = {"mean": mu, "sd": sd, "n": n}
        row["train_seconds"] = common.mean_sd(r.get("train_seconds") for r in items)[0]
        rows.append(row)
    order = {"main": 0, "upper": 1, "ablation": 2}
    rank = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (order.get(r["group"], 9), r["setting"], r["budget_fraction"],
                             rank.get(r["variant"], len(rank)), r["variant"]))
    return rows


def mean_fg_dice(run: dict, class_names: Sequence[str]) -> float | None:
    vals = [_metric(run, c, "dice") for c in _class_keys(class_names)]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(stat: dict, digits: int) -> str:
    if not stat or not stat.get("n"):
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def _complete_variant(ablation_variant: str) -> str:
    """``barl -dpr [dpr=1]`` -> ``barl [dpr=1]``: the run an ablation row is compared with.

    The reference must carry the same ``--set`` overrides as the ablation rows, or the table
    would compare the ablation with the method at other weights.
    """
    name, _, overrides = ablation_variant.partition(" [")
    base = name.split(" -")[0]
    return f"{base} [{overrides}" if overrides else base


def render_tables(summary: list[dict], class_names: Sequence[str], *, jaccard: bool = False) -> str:
    """Markdown: the main table (with the upper bound) and, if present, the ablation table."""
    classes = _class_keys(class_names)
    metrics = [("dice", "Dice", 3)] + ([("jaccard", "Jaccard", 3)] if jaccard else [])
    metrics += [("hd95", "HD95", 2), ("asd", "ASD", 2)]
    headers = ["setting", "labelled", "method", "seeds"]
    for _key, title, _ in metrics:
        for c in classes:
            headers.append(f"{title} {c}" if len(classes) > 1 else title)
    out = []
    for group, title in (("main", "Label efficiency"), ("ablation", "Ablation (BARL terms off)")):
        rows = [r for r in summary if r["group"] == group or (group == "main" and r["group"] == "upper")]
        if not rows:
            continue
        if group == "ablation":  # the complete method on the same setting, as the reference row
            complete = {_complete_variant(r["variant"]) for r in rows}
            ref = [r for r in summary if r["group"] == "main" and r["variant"] in complete
                   and r["setting"] == "sparse" and r["budget"] == rows[0]["budget"]]
            rows = ref + rows
        table = []
        for r in rows:
            line = [r["setting"], r["budget"], r["variant"], str(len(r["seeds"]))]
            for key, _, digits in metrics:
                for c in classes:
                    line.append(_fmt(r["metrics"].get(c, {}).get(key, {}), digits))
            table.append(line)
        out.append(f"### {title}\n\n" + common.markdown_table(headers, table))
    return "\n\n".join(out)


def render_per_seed(runs: dict, class_names: Sequence[str], reference: str = "barl") -> str:
    """Markdown: mean foreground Dice of every run by seed, and each variant's paired gap to ``reference``.

    Why: a mean ± sd per method hides whether one method wins seed by seed; the gap taken on
    the same seed (same labelled cases, same initialisation seed) removes the spread the seeds
    share, so a gap larger than its own sd is a result and one smaller is not.
    """
    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    for run in runs.values():
        dice = mean_fg_dice(run, class_names)
        if dice is None:
            continue
        key = (run["setting"], float(run.get("budget_fraction", 0.0)), run["budget"])
        groups.setdefault(key, {}).setdefault(run["variant"], {})[int(run["seed"])] = dice
    out = []
    rank = {m: i for i, m in enumerate(METHODS)}
    for (setting, _fraction, budget), by_variant in sorted(groups.items()):
        seeds = sorted({s for v in by_variant.values() for s in v})
        ref = by_variant.get(reference, {})
        headers = ["method"] + [f"seed {s}" for s in seeds] + ["mean ± sd", f"{reference} minus it (paired)"]
        rows = []
        for variant in sorted(by_variant, key=lambda v: (rank.get(v, len(rank)), v)):
            vals = by_variant[variant]
            line = [variant] + [f"{vals[s]:.3f}" if s in vals else "" for s in seeds]
            line.append(common.fmt_mean_sd(vals.values()))
            paired = [ref[s] - vals[s] for s in seeds if s in vals and s in ref]
            line.append("" if variant == reference or not paired
                        else f"{common.fmt_mean_sd(paired)} (n={len(paired)})")
            rows.append(line)
        out.append(f"#### Per seed: {setting}, {budget} labelled (mean foreground Dice)\n\n"
                   + common.markdown_table(headers, rows))
    return "\n\n".join(out)
