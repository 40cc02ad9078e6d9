"""Active-learning results over seeds: curves, paired differences, slices saved, pick statistics.

Why apart: ``report.py``, ``merge_results.py`` and ``replot.py`` rebuild the summary from a stored
(or merged) results file without any model or data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks import common
from benchmarks.al_advice import advice_along_curves

__all__ = ["slices_to_reach", "mean_curve", "paired_differences", "summarise", "pick_facts", "pick_stats",
           "summarise_all"]


def slices_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """Annotated slices at which a (slices, Dice) curve first reaches ``target`` (linear
    interpolation between rounds); ``None`` if it never does.
    """
    pts = sorted(curve)
    for i, (n, d) in enumerate(pts):
        if d >= target:
            if i == 0:
                return float(n)
            n0, d0 = pts[i - 1]
            return float(n0 + (target - d0) / (d - d0) * (n - n0)) if d != d0 else float(n)
    return None


def mean_curve(runs: dict, strategy: str) -> list[dict]:
    """Per round: annotated slices and mean ± sd over seeds of the test-set mean fg Dice."""
    by_round: dict[int, list[dict]] = {}
    for r in runs.values():
        if r["strategy"] == strategy:
            for pt in r["curve"]:
                by_round.setdefault(pt["round"], []).append(pt)
    out = []
    for rnd in sorted(by_round):
        pts = by_round[rnd]
        mu, sd, n = common.mean_sd(p["mean_fg_dice"] for p in pts)
        out.append({"round": rnd, "n_slices": float(np.mean([p["n_slices"] for p in pts])),
                    "dice": mu, "sd": sd, "n": n})
    return out


def paired_differences(runs: dict, strategy: str, baseline: str = "random") -> list[dict]:
    """Per round: mean ± sd over seeds of ``strategy``'s Dice minus ``baseline``'s, same seed
    (both start from the same round-0 model, so the pairing removes the shared part)."""
    by_seed = {(r["strategy"], r["seed"]): {p["round"]: p["mean_fg_dice"] for p in r["curve"]}
               for r in runs.values()}
    seeds = sorted(sd for st, sd in by_seed if st == strategy and (baseline, sd) in by_seed)
    rounds = sorted({rnd for sd in seeds for rnd in by_seed[(strategy, sd)]})
    out = []
    for rnd in rounds:
        diffs = [by_seed[(strategy, sd)][rnd] - by_seed[(baseline, sd)][rnd] for sd in seeds
                 if by_seed[(strategy, sd)].get(rnd) is not None and by_seed[(baseline, sd)].get(rnd) is not None]
        mu, sd_, n = common.mean_sd(diffs)
        out.append({"round": rnd, "diff": mu, "sd": sd_, "n": n})
    return out


def summarise(runs: dict, strategies: Sequence[str]) -> dict:
    """Curves per strategy and the answer: slices saved by each strategy vs random."""
    curves = {s: mean_curve(runs, s) for s in strategies}
    answer: dict = {"question": "how many fewer annotated slices does each strategy ('focused', the "
                    "default) need to reach the Dice that 'random' reaches at the end?"}
    rand = curves.get("random")
    if rand:
        target = rand[-1]["dice"]
        n_final = rand[-1]["n_slices"]
        answer.update(random_final_dice=target, random_final_slices=n_final)
        for s in strategies:
            if s == "random" or not curves.get(s):
                continue
            reach = slices_to_reach([(p["n_slices"], p["dice"]) for p in curves[s]], target)
            answer[s] = {
                "paired_vs_random": paired_differences(runs, s),
                "slices_to_reach": reach,
                "slices_saved": None if reach is None else n_final - reach,
                "fraction_saved": None if reach is None else (n_final - reach) / n_final,
                "final_dice": curves[s][-1]["dice"],
                "reached": reach is not None,
            }
    return {"curves": curves, "answer": answer}


def pick_facts(truth: np.ndarray, z: int) -> tuple[int, bool]:
    """Foreground voxels of axial slice ``z`` and whether it lies outside the structure's
    z-extent (recorded with each pick, so that the statistics need no data after a merge)."""
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    return int(np.count_nonzero(truth[z])), bool(zs.size) and not zs[0] <= z <= zs[-1]


def pick_stats(runs: dict, truth: dict[str, np.ndarray] | None = None) -> dict:
    """What each strategy asked the annotator to label: how many picked slices hold any
    foreground, their median foreground voxels, and how many lie outside the structure's
    z-extent (empty slices beyond its ends). Explains a curve better than its Dice alone.

    Each pick ``[case, z, score, fg_voxels, outside]`` carries its facts; picks of older files
    (``[case, z, score]``) are looked up in ``truth``.
    """
    out: dict = {}
    for run in runs.values():
        st = out.setdefault(run["strategy"], {"picked": 0, "with_foreground": 0, "outside_object": 0, "_fg": []})
        for point in run["curve"][1:]:
            for pick in point["picked"]:
                if len(pick) >= 5:
                    fg, outside = int(pick[3]), bool(pick[4])
                elif truth is not None:
                    fg, outside = pick_facts(truth[pick[0]], int(pick[1]))
                else:
                    raise ValueError("picks without their facts need the truth maps")
                st["picked"] += 1
                st["with_foreground"] += fg > 0
                st["outside_object"] += outside
                st["_fg"].append(fg)
    for st in out.values():
        st["median_foreground_voxels"] = float(np.median(st.pop("_fg"))) if st["picked"] else None
    return out


def summarise_all(runs: dict, strategies: Sequence[str], truth: dict[str, np.ndarray] | None = None) -> dict:
    """:func:`summarise` plus the pick statistics and the advice along the curves (what the
    report renders; :mod:`benchmarks.merge_results` calls it on the merged runs)."""
    present = {r["strategy"] for r in runs.values()}
    summary = summarise(runs, [s for s in strategies if s in present])
    try:
        summary["picks"] = pick_stats(runs, truth)
    except ValueError:  # picks of an older file, without their facts and without the data
        summary["picks"] = None
    summary["advice"] = advice_along_curves(runs)
    return summary
