"""The "label more or stop?" advice replayed along active-learning curves (no training).

Why apart from ``active_learning.py``: this is how the advice's thresholds are chosen and
checked, from the curves a results file holds; it needs no model, data or GPU. Used by
``active_learning.py`` (its summary and ``--advice-only``) and by ``report.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import common

__all__ = ["FLAT_WITHIN", "LATE_AFTER", "advice_along_curves", "render_advice", "advice_sensitivity",
           "seed_spread", "advice_only"]

#: A curve counts as flat from the first round whose Dice is within this of the curve's best.
FLAT_WITHIN = 0.02
#: A plateau stop is *late* when it comes more than this many rounds after the curve flattened
#: (a rule needs a version or two after the flat round to see it), or never although the run
#: went that far.
LATE_AFTER = 2


def _plateau_before_recalibration(curve: Sequence[tuple[int, float]], gain: float = 0.01) -> bool:
    """The advice's plateau test before its recalibration on these curves (kept to compare):
    the mean gain of the last two versions, or the one gain there is, below ``gain``."""
    if len(curve) < 2:
        return False
    return (curve[-1][1] - curve[-3][1]) / 2 < gain if len(curve) >= 3 else curve[-1][1] - curve[-2][1] < gain


def _stop_verdict(curve: Sequence[tuple[int, float]], stop: int | None, flat: int) -> tuple[bool, bool]:
    """``(early, late)`` of a plateau stop: early when the curve later rises more than
    :data:`FLAT_WITHIN` above the Dice at the stop; late when the stop (or its absence) comes more
    than :data:`LATE_AFTER` rounds after the flat round, within the rounds run."""
    if stop is not None:
        return max(d for _, d in curve[stop:]) > curve[stop][1] + FLAT_WITHIN, stop > flat + LATE_AFTER
    return False, len(curve) - 1 > flat + LATE_AFTER


def advice_along_curves(runs: dict, cfg=None) -> dict:
    """Where :func:`barl_core.workspace.advice.advise` says "stop" (export, or stop below the target) along each run's
    learning curve, against where the curve flattens.

    The advice is asked after every round with the curve so far (test-set Dice standing in for
    the frozen-validation Dice the app uses; every new slice already trained on). Twice: with
    ``cfg`` as given (its Dice target included), and with the target set to 0, which isolates
    the *plateau test*: where it would stop once the target is met. The plateau test as it was
    before its recalibration (:func:`_plateau_before_recalibration`) is replayed alongside.
    The curve *flattens* at the first round whose Dice is within :data:`FLAT_WITHIN` of the
    run's best (the last round when it is still rising). A plateau stop is *early* when the
    curve later rises more than :data:`FLAT_WITHIN` above the Dice at which it stopped, *late*
    as :func:`_stop_verdict` says.
    """
    from dataclasses import replace

    from barl_core.workspace.advice import AdviceConfig, advise

    cfg = cfg or AdviceConfig()
    no_target = replace(cfg, target_dice=0.0)
    out: dict = {}
    for key, run in runs.items():
        curve = [(p["n_slices"], p["mean_fg_dice"]) for p in run["curve"] if p["mean_fg_dice"] is not None]
        if not curve:
            continue
        best = max(d for _, d in curve)
        flat = next(i for i, (_, d) in enumerate(curve) if d >= best - FLAT_WITHIN)

        def first_stop(c, curve=curve):
            acts = [advise(curve[: i + 1], n_annotated=curve[i][0], has_model=True, cfg=c).action
                    for i in range(len(curve))]
            return acts, next((i for i, a in enumerate(acts) if a in ("export", "stop")), None)

        actions, stop = first_stop(cfg)
        _, plateau = first_stop(no_target)
        early, late = _stop_verdict(curve, plateau, flat)
        old = next((i for i in range(1, len(curve)) if _plateau_before_recalibration(curve[: i + 1])), None)
        old_early, old_late = _stop_verdict(curve, old, flat)
        out[key] = {"strategy": run["strategy"], "flat_round": flat, "stop_round": stop, "actions": actions,
                    "plateau_stop_round": plateau, "plateau_stop_early": early, "plateau_stop_late": late,
                    "old_plateau_stop_round": old, "old_plateau_stop_early": old_early,
                    "old_plateau_stop_late": old_late, "best_dice": best, "last_round": len(curve) - 1}
    return out


def _stop_cell(stop: int | None, early: bool | None, late: bool | None) -> str:
    text = "never" if stop is None else str(stop)
    return text + (" (early)" if early else "") + (" (late)" if late else "")


def render_advice(advice: dict) -> str:
    """Per run: the flat round, the configured advice's stop, and the plateau test's stop now and
    before its recalibration (a stored summary without the latter shows "n/a")."""
    rows = []
    for key, v in sorted(advice.items()):
        old = (_stop_cell(v["old_plateau_stop_round"], v.get("old_plateau_stop_early"), v.get("old_plateau_stop_late"))
               if "old_plateau_stop_round" in v else "n/a")
        rows.append([key, str(v["flat_round"]) + (" (still rising)" if v["flat_round"] == v.get("last_round") else ""),
                     "never" if v["stop_round"] is None else str(v["stop_round"]),
                     _stop_cell(v.get("plateau_stop_round"), v.get("plateau_stop_early"), v.get("plateau_stop_late")),
                     old, f"{v['best_dice']:.3f}"])
    return ("### \"Label more or stop?\" along the curves\n\n" + common.markdown_table(
        ["run", f"flat from round (within {FLAT_WITHIN} of best)", "advice says stop at round",
         "plateau test alone stops at round", "plateau test before recalibration", "best Dice"], rows))


def advice_sensitivity(runs: dict, gains: Sequence[float] = (0.01, 0.02, 0.03),
                       min_slices: Sequence[int] | None = None) -> list[dict]:
    """The plateau test's stops on these curves for other thresholds (``plateau_gain`` x
    ``min_slices_to_stop``): how many runs it stops, how many early or late. What the
    configured values are chosen from."""
    from dataclasses import replace

    from barl_core.workspace.advice import AdviceConfig

    base = AdviceConfig()
    rows = []
    for g in gains:
        for m in (min_slices if min_slices is not None else (0, base.min_slices_to_stop)):
            adv = advice_along_curves(runs, replace(base, plateau_gain=g, min_slices_to_stop=m))
            rows.append({"plateau_gain": g, "min_slices_to_stop": m, "runs": len(adv),
                         "stops": sum(v["plateau_stop_round"] is not None for v in adv.values()),
                         "early": sum(bool(v["plateau_stop_early"]) for v in adv.values()),
                         "late": sum(bool(v["plateau_stop_late"]) for v in adv.values())})
    return rows


def seed_spread(runs: dict, last: int = 2) -> list[float]:
    """Sd of the Dice between seeds of one strategy, over each strategy's last ``last`` rounds
    (the noise a gain between versions must exceed to mean anything)."""
    by: dict = {}
    for r in runs.values():
        by.setdefault(r["strategy"], []).append([p["mean_fg_dice"] for p in r["curve"]])
    out = []
    for curves in by.values():
        n = min(len(c) for c in curves)
        if len(curves) >= 2:
            out += [float(v) for v in np.std([c[:n] for c in curves], axis=0, ddof=1)[n - last:]]
    return out


def advice_only(path: Path) -> str:
    """Replay the advice along the curves stored in ``path`` (no training), store it in the
    file's summary, and return the tables: how ``--advice-only`` recalibrates the advice."""
    import json

    data = json.loads(Path(path).read_text())
    runs = data.get("runs", {})
    advice = advice_along_curves(runs)
    data.setdefault("summary", {})["advice"] = advice
    common.write_results(path, data)
    sens = common.markdown_table(
        ["plateau_gain", "min_slices_to_stop", "runs stopped", "early", "late"],
        [[f"{r['plateau_gain']}", str(r["min_slices_to_stop"]), f"{r['stops']} of {r['runs']}", str(r["early"]),
          str(r["late"])] for r in advice_sensitivity(runs)])
    sd = seed_spread(runs)
    spread = (f"Sd of the Dice between seeds over each strategy's last two rounds: median {np.median(sd):.3f} "
              f"(range {min(sd):.3f}-{max(sd):.3f})." if sd else "One seed per strategy: no spread between seeds.")
    return render_advice(advice) + "\n\nThe plateau test with other thresholds (two gains):\n\n" + sens + "\n\n" + spread
