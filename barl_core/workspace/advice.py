"""Label more or stop? : a plain answer from the learning curve, disagreement and correction effort.

The rules are deliberately simple so a user can check them (first match wins):

1. **No model yet** -> with fewer than ``min_slices`` annotated slices: *label N more*
   (N = the shortfall); otherwise *train now*.
2. **New labels unused** -> ``unused_slices >= retrain_after`` annotated slices that the
   current version did not train on: *fine-tune now*.
3. **Good enough** -> frozen-validation Dice ``>= target_dice``, the curve on a plateau (below),
   the humans barely correct the proposals
   (mean proposal-vs-final Dice over the last ``window`` corrections ``>= correction_ok``, or
   no corrections yet) and disagreement not rising: *export*.
3b. **Flat below the target** -> the curve on a plateau (below), the humans barely correct the
   proposals and disagreement not rising, but the Dice under ``target_dice``: *stop*: more
   slices of these cases are unlikely to reach the target. In the active-learning benchmark
   from a working round-0 model (docs/benchmarks.md 2a) every curve was flat from the first
   version at ~0.82-0.83, under the 0.85 target, and the advice said "label more" after every
   round: late, for as long as a user would keep labelling.
4. **Otherwise** -> *label N more* slices, the top suggestions. N is estimated from the slope of
   the learning curve (Dice gained per slice): ``ceil((target - dice) / slope)`` clipped to
   ``[min_batch, max_batch]``; ``default_batch`` when the slope is unknown or not positive.

The plateau test (:func:`on_plateau`): at least ``min_slices_to_stop`` annotated slices, and
each of the last ``plateau_versions`` gains between versions smaller than ``plateau_gain``
in size, with the last version within ``plateau_gain`` of the best so far. Recalibrated on the
stored active-learning curves (docs/benchmarks.md section 2, ``python
benchmarks/active_learning.py --advice-only``): the rule it replaces (the mean gain of the last
two versions, or the one gain there is, below 0.01) stopped 6 of 10 runs at round 1, on a
curve flat for one version before it rose by 0.35-0.41. Why each part:

- **two gains, each small**: one small gain (or a small mean of a big and a dip) is noise;
- **0.02**: the spread between seeds at the curves' flat end (sd 0.007-0.045 over rounds 5-6,
  median ~0.018): a smaller gain cannot be told from noise; 0.03 already stopped a curve that
  then rose by 0.034 (focused seed 0);
- **within 0.02 of the best**: a curve that fell from its best is noisy, not flat;
- **20 slices**: the first versions of a model trained on few slices can stay flat before they
  rise (disagreement seed 1: -0.002 and +0.018 up to 16 slices, then +0.35); any minimum above
  16 stops no stored curve early, 20 is the benchmark's next step (8 + 4 per round; read off
  8 hippocampus cases, not a law).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AdviceConfig", "Advice", "advise", "on_plateau"]


@dataclass
class AdviceConfig:
    """Thresholds of the rules (see the module docstring for why these values)."""

    min_slices: int = 5
    retrain_after: int = 3
    target_dice: float = 0.85
    #: a gain between versions smaller than this (in size) is flat
    plateau_gain: float = 0.02
    #: how many consecutive gains must be flat
    plateau_versions: int = 2
    #: no plateau (no "export") with fewer annotated slices than this
    min_slices_to_stop: int = 20
    correction_ok: float = 0.9
    window: int = 5
    min_batch: int = 2
    max_batch: int = 20
    default_batch: int = 5


@dataclass
class Advice:
    """What to do next: ``action`` is ``"label-more"``, ``"train"``, ``"fine-tune"``, ``"export"`` or ``"stop"``."""

    action: str
    message: str
    n_slices: int = 0
    slices: list = field(default_factory=list)
    reasons: list = field(default_factory=list)


def on_plateau(curve: list[tuple[int, float]], n_annotated: int, cfg: AdviceConfig) -> bool:
    """Whether the learning curve has flattened (the plateau test of the module docstring).

    Parameters
    ----------
    curve : list of (annotated slices, Dice)
        One point per model version, oldest first.
    n_annotated : int
        Annotated slices now: below ``cfg.min_slices_to_stop`` the curve is never a plateau.
    cfg : AdviceConfig
    """
    k = max(int(cfg.plateau_versions), 1)
    if n_annotated < cfg.min_slices_to_stop or len(curve) < k + 1:
        return False
    dice = [d for _, d in curve]
    gains = np.diff(dice[-(k + 1) :])
    return bool(np.all(np.abs(gains) < cfg.plateau_gain) and dice[-1] >= max(dice) - cfg.plateau_gain)


def advise(
    curve: list[tuple[int, float]],
    *,
    n_annotated: int,
    unused_slices: int = 0,
    has_model: bool = False,
    disagreement_trend: list[float] | None = None,
    correction_dice: list[float] | None = None,
    suggestions: list | None = None,
    cfg: AdviceConfig | None = None,
) -> Advice:
    """Apply the rules.

    Parameters
    ----------
    curve : list of (annotated slices, frozen-validation Dice)
        One point per model version with a score, oldest first.
    n_annotated : int
        Annotated slices in the workspace now.
    unused_slices : int
        Annotated slices the current model did not train on (new since it was trained).
    has_model : bool
    disagreement_trend : list of float
        Mean disagreement per version, oldest first.
    correction_dice : list of float
        Dice between proposal and final of accepted/edited slices, oldest first.
    suggestions : list
        Ranked slices to annotate next (e.g. ``(case, z)`` or ``SliceSuggestion``).
    """
    cfg = cfg or AdviceConfig()
    suggestions = list(suggestions or [])
    if not has_model:
        if n_annotated < cfg.min_slices:
            n = cfg.min_slices - n_annotated
            return Advice(
                "label-more",
                f"Label {n} more slice(s) before the first training "
                f"(have {n_annotated}, want {cfg.min_slices}).",
                n,
                suggestions[:n],
                ["no model yet"],
            )
        return Advice(
            "train",
            f"{n_annotated} slices annotated: train a first model now.",
            reasons=["no model yet"],
        )
    if unused_slices >= cfg.retrain_after:
        return Advice(
            "fine-tune",
            f"{unused_slices} annotated slice(s) are not in the current model yet: fine-tune now.",
            reasons=[f"{unused_slices} unused slices"],
        )
    reasons = []
    dice = curve[-1][1] if curve else None
    gain = curve[-1][1] - curve[-2][1] if len(curve) >= 2 else None
    plateau = on_plateau(curve, n_annotated, cfg)
    recent = (correction_dice or [])[-cfg.window :]
    effort_ok = not recent or float(np.mean(recent)) >= cfg.correction_ok
    trend = disagreement_trend or []
    rising = len(trend) >= 2 and trend[-1] > trend[-2] * 1.05
    if dice is None:
        reasons.append("no frozen-validation score yet (too few annotated slices held out)")
    else:
        reasons.append(f"validation Dice {dice:.3f} (target {cfg.target_dice})")
        if gain is not None:
            reasons.append(f"last gain {gain:+.3f}")
        reasons.append(
            "curve flat" if plateau else
            f"curve not flat yet (wants {cfg.plateau_versions} gains under {cfg.plateau_gain} "
            f"and at least {cfg.min_slices_to_stop} slices)"
        )
    if recent:
        reasons.append(f"proposals kept at Dice {np.mean(recent):.3f} by the human")
    if trend:
        reasons.append("disagreement " + ("rising" if rising else "not rising"))
    if dice is not None and plateau and effort_ok and not rising:  # flat: rule 3 at the target, 3b below it
        if dice >= cfg.target_dice:
            return Advice(
                "export",
                f"Good enough: validation Dice {dice:.3f} and the curve has "
                "flattened. Export the masks.",
                reasons=reasons,
            )
        return Advice(
            "stop",
            f"The curve has flattened at validation Dice {dice:.3f}, below the target {cfg.target_dice}: "
            "more slices of these cases are unlikely to reach it. Export if the masks are good enough; "
            "otherwise the model, not the labels, is the limit (a longer or larger training).",
            reasons=reasons,
        )
    n = cfg.default_batch
    if dice is not None and len(curve) >= 2:
        dn = curve[-1][0] - curve[-2][0]
        slope = gain / dn if dn > 0 and gain is not None else 0.0
        if slope > 0:
            need = max(cfg.target_dice - dice, 0.0) / slope
            n = int(np.clip(math.ceil(need), cfg.min_batch, cfg.max_batch))
    which = suggestions[:n]
    return Advice(
        "label-more",
        f"Label {n} more slice(s)"
        + (", starting with the suggested ones" if which else "")
        + ", then fine-tune.",
        n,
        which,
        reasons,
    )
