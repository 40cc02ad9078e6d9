"""Weights, switches and the ramp-up of the BARL loss terms (defaults from ``shared/design/barl_method.md``).

Kept apart from the terms themselves: the training config, the CLI's ``--disable`` and the
methods read it without touching any tensor code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import TrainingError

__all__ = [
    "ALIGNMENT_TERMS",
    "PCBC_MODES",
    "REGION_MODES",
    "LossConfig",
    "LossConfigError",
    "LossWeights",
    "gaussian_rampup",
]

#: The switchable cross-branch terms (names used by ``--disable``).
ALIGNMENT_TERMS = ("dpr", "pcbc", "region", "instance")
PCBC_MODES = ("disagreement", "urpc")
REGION_MODES = ("prototype", "contrast")


class LossConfigError(TrainingError, ValueError):
    """A :class:`LossConfig` field is out of range or a term name is unknown."""


@dataclass
class LossConfig:
    """Weights, switches and parameters of the BARL loss terms.

    The total a method should form is
    ``L_sup + gaussian_rampup(it, total, rampup_fraction) * sum(weight(t) * L_t)``
    over :data:`ALIGNMENT_TERMS`.

    Parameters
    ----------
    dpr, pcbc, region, instance : float
        Weights of the alignment terms (1.0, 0.5, 0.1, 0.1).
    use_dpr, use_pcbc, use_region, use_instance : bool
        Ablation switches; a disabled term has weight 0 and need not be computed.
    dpr_threshold : float
        DPR uses only voxels whose pseudo-label confidence is >= this (0: all voxels).
    cutmix_prob : float
        Probability that an iteration's strong view is cut-mixed (a box of each patch replaced
        by the next patch's, :mod:`barl_core.data.cutmix`); the strong branch's outputs are
        un-mixed before every loss. Read by the two-branch methods (BARL and CPS). 0: off.
    teacher_ema : float
        When > 0, BARL's label-space terms (DPR, PCBC) take each branch's pseudo-labels from an
        exponential moving average of the *other* branch (this decay), run without gradients on
        the view that branch saw. 0: from the branches themselves (the design). Not combined
        with ``cutmix_prob`` or ``dpr_threshold``.
    pcbc_area_floor : float
        PCBC divides by max(disagreement area, floor * volume) so a tiny disagreement area
        does not blow the term up.
    pcbc_mode : {"disagreement", "urpc"}
        BARL's disagreement-masked correction, or URPC-style uncertainty rectification.
    region_mode : {"prototype", "contrast"}
        ``prototype``: the design note's ``1 - cos`` between the branches' class prototypes;
        ``contrast``: each branch's voxels classified by the other branch's prototypes
        (:func:`~barl_core.losses.representation.region_contrast_loss`), on annotated voxels
        and on unannotated ones where the branches agree.
    region_temperature : float
        Softmax temperature of the ``contrast`` mode.
    region_min_voxels : int
        A class takes part in region alignment only with at least this many voxels.
    instance_min_size, instance_top_k, instance_iou_threshold
        Connected components smaller than ``min_size`` voxels are dropped, only the
        ``top_k`` largest per branch are matched, pairs below the IoU threshold are dropped.
    rampup_fraction : float
        Fraction of the iterations over which the alignment weight ramps up.
    rampup_iterations : int
        When > 0, the ramp-up length in iterations, replacing ``rampup_fraction``: a term's
        weight at iteration t then does not depend on how long the run was planned, so a
        2-minute run and a 1500-iteration run share one method (issue 11). 0: the fraction.
    ignore_index : int
        Label value of unannotated voxels.
    """

    dpr: float = 1.0
    pcbc: float = 0.5
    region: float = 0.1
    instance: float = 0.1
    use_dpr: bool = True
    use_pcbc: bool = True
    use_region: bool = True
    use_instance: bool = True
    dpr_threshold: float = 0.0
    cutmix_prob: float = 0.0
    teacher_ema: float = 0.0
    pcbc_area_floor: float = 0.01
    pcbc_mode: str = "disagreement"
    region_mode: str = "prototype"
    region_temperature: float = 0.1
    region_min_voxels: int = 8
    instance_min_size: int = 4
    instance_top_k: int = 8
    instance_iou_threshold: float = 0.1
    rampup_fraction: float = 0.4
    rampup_iterations: int = 0
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        """Refuse weights and parameters out of range (a clear error, not a silent NaN later)."""
        checks = [
            (min(self.dpr, self.pcbc, self.region, self.instance) >= 0, "weights must be >= 0"),
            (0.0 <= self.dpr_threshold < 1.0, "dpr_threshold must be in [0, 1)"),
            (0.0 <= self.cutmix_prob <= 1.0, "cutmix_prob must be in [0, 1]"),
            (0.0 <= self.teacher_ema < 1.0, "teacher_ema must be in [0, 1)"),
            (not (self.teacher_ema and (self.cutmix_prob or self.dpr_threshold)),
             "teacher_ema is not combined with cutmix_prob or dpr_threshold"),
            (0.0 < self.pcbc_area_floor <= 1.0, "pcbc_area_floor must be in (0, 1]"),
            (self.pcbc_mode in PCBC_MODES, f"pcbc_mode must be one of {PCBC_MODES}"),
            (self.region_mode in REGION_MODES, f"region_mode must be one of {REGION_MODES}"),
            (self.region_temperature > 0, "region_temperature must be > 0"),
            (self.region_min_voxels >= 1, "region_min_voxels must be >= 1"),
            (self.instance_min_size >= 1, "instance_min_size must be >= 1"),
            (self.instance_top_k >= 1, "instance_top_k must be >= 1"),
            (0.0 <= self.instance_iou_threshold <= 1.0, "instance_iou_threshold in [0, 1]"),
            (0.0 <= self.rampup_fraction <= 1.0, "rampup_fraction must be in [0, 1]"),
            (self.rampup_iterations >= 0, "rampup_iterations must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise LossConfigError(f"Invalid loss configuration: {message}.")

    def rampup(self, iteration: int, total: int) -> float:
        """Weight in [0, 1] of the alignment terms at ``iteration`` of a ``total``-iteration run."""
        if self.rampup_iterations > 0:
            return gaussian_rampup(iteration, self.rampup_iterations, 1.0)
        return gaussian_rampup(iteration, total, self.rampup_fraction)

    def enabled(self, term: str) -> bool:
        """Whether alignment term ``term`` is switched on."""
        return bool(getattr(self, f"use_{_check_term(term)}"))

    def weight(self, term: str) -> float:
        """Return the term's weight, 0.0 when it is switched off."""
        return float(getattr(self, term)) if self.enabled(term) else 0.0

    def enabled_terms(self) -> tuple[str, ...]:
        """Return the alignment terms that are on, in canonical order."""
        return tuple(t for t in ALIGNMENT_TERMS if self.enabled(t))

    def disable(self, terms: Iterable[str] | str) -> LossConfig:
        """Return a copy with ``terms`` switched off.

        ``terms`` are names, or one comma-separated string as in ``--disable dpr,pcbc``.

        Raises
        ------
        LossConfigError
            A name is not one of :data:`ALIGNMENT_TERMS`.
        """
        if isinstance(terms, str):
            terms = [t for t in terms.split(",") if t.strip()]
        return replace(self, **{f"use_{_check_term(t)}": False for t in terms})


#: Alias: the same dataclass under the name some callers use.
LossWeights = LossConfig


def _check_term(term: str) -> str:
    name = term.strip().lower()
    if name not in ALIGNMENT_TERMS:
        raise LossConfigError(
            f"Unknown loss term {term!r}; choose among {', '.join(ALIGNMENT_TERMS)}."
        )
    return name


def gaussian_rampup(iteration: int, total: int, fraction: float = 0.4) -> float:
    """Weight in [0, 1] of the unsupervised terms: ``exp(-5 (1 - t)^2)``, t = it / (f * total).

    Consistency targets from an untrained network are noise; the ramp lets the supervised
    term shape the branches first. Returns 1.0 once ``iteration >= fraction * total`` (and
    always when the ramp length is 0).
    """
    length = fraction * total
    if length <= 0:
        return 1.0
    t = min(max(iteration / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
