"""The trainer's validation hook: score when due, keep the best weights, stop on a plateau.

Scoring itself (held-out volumes, Dice on annotated voxels) is
:class:`~barl_core.training.validator.Validator`; this is the policy around it, kept out of
the loop so the loop reads as its hooks.
"""

from __future__ import annotations

import numpy as np

from barl_core.data.sampler import TrainingVolume
from barl_core.training import distributed
from barl_core.training.config import TrainConfig
from barl_core.training.deadline import STOP_PLATEAU
from barl_core.training.validator import Validator

__all__ = ["ValidationHooks"]


class ValidationHooks:
    """Trainer mixin: validation, best checkpoint, patience, pseudo-label diagnostics.

    Uses the trainer's ``config``, ``method``, ``device``, ``dist``, ``run_dir`` and
    ``save_checkpoint``.
    """

    def setup_validation(
        self,
        config: TrainConfig,
        validation_volumes: list[TrainingVolume] | None,
        diagnostic_volumes: list[TrainingVolume] | None,
    ) -> None:
        """Build the validators and reset the plateau bookkeeping (no validation volumes: off)."""
        vcfg = config.validation
        self.validator: Validator | None = None
        if vcfg.every and validation_volumes:
            self.validator = Validator(
                validation_volumes, config.patch_size, config.network.num_classes,
                config.ignore_index, vcfg.overlap,
            )
        #: Pseudo-label quality: labelled training volumes whose labels hold the truth on the
        #: voxels training does NOT see (scored per branch at each validation; never trained on).
        self.diagnostic: Validator | None = None
        if self.validator is not None and any(
            v.labels is not None and bool(np.any(v.labels != config.ignore_index)) for v in diagnostic_volumes or ()
        ):
            self.diagnostic = Validator(
                diagnostic_volumes, config.patch_size, config.network.num_classes,
                config.ignore_index, vcfg.overlap,
            )
        self.best_score: float | None = None
        self.best_iteration: int | None = None
        self._stale = 0
        #: Why the run stops before its iteration count: "" (it does not), ``STOP_PLATEAU``
        #: (set here) or ``STOP_TIME_BUDGET`` (set by the trainer's deadline before this hook).
        self.stop_reason = ""

    def is_final(self, done: int) -> bool:
        """Return True when iteration count ``done`` ends the run: the last one, or a stop decided.

        A time-budget stop is decided before the iteration's end hooks (``stop_reason`` set), so
        that iteration is validated and logged like the last.
        """
        return done == self.config.iterations or bool(self.stop_reason)

    def validation_due(self, done: int) -> bool:
        """Return True when the iteration count ``done`` is a validation (every N, and the final one)."""
        every = self.config.validation.every
        return self.validator is not None and (done % every == 0 or self.is_final(done))

    def gradnorms_due(self, done: int) -> bool:
        """Per-term gradient norms go with validation (``validation.gradnorms``; not under torchrun)."""
        return self.config.validation.gradnorms and not self.dist.enabled and self.validation_due(done)

    def validate(self, done: int) -> dict[str, float]:
        """Score the held-out volumes when due; keep the best weights; decide a plateau stop.

        Returns the scores (empty when no validation was due) with ``best`` and
        ``best_iteration`` added. Rank 0 scores; every rank learns whether to stop.
        """
        vcfg = self.config.validation
        if not self.validation_due(done):
            return {}
        scores: dict[str, float] = {}
        stop = False
        if self.dist.is_main:
            scores = self.validator.score(self.method.model_for_checkpoint(), self.device)
            if self.best_score is None or scores["dice"] > self.best_score + vcfg.min_delta:
                self.best_score, self.best_iteration, self._stale = scores["dice"], done, 0
                self.save_checkpoint(self.run_dir / "best.pt")
            else:
                self._stale += 1
            stop = bool(vcfg.patience) and self._stale >= vcfg.patience
            scores.update(best=float(self.best_score), best_iteration=float(self.best_iteration))
            if self.diagnostic is not None:
                scores.update(self.pseudo_label_scores())
        if distributed.any_rank(stop, self.dist, self.device) and not self.stop_reason:
            self.stop_reason = STOP_PLATEAU
        return scores

    def pseudo_label_scores(self) -> dict[str, float]:
        """Mean foreground Dice of each branch on the diagnostic volumes' unannotated voxels."""
        model = self.method.model_for_checkpoint()
        branches = {"a": model.branch_a, "b": model.branch_b} if hasattr(model, "branch_a") else {"a": model}
        return {f"pseudo_dice_{k}": self.diagnostic.score(m, self.device)["dice"]  # type: ignore[union-attr]
                for k, m in branches.items()}
