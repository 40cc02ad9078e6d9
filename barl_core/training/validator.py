"""Validation during training: held-out labelled cases, Dice, best checkpoint, plateau stop.

The trainer scores the model every ``ValidationConfig.every`` iterations on validation
volumes nobody trains on, keeps the weights of the best score (``RUN_DIR/best.pt``; the final
``model.pt`` holds them) and stops once ``patience`` validations in a row brought no
improvement of at least ``min_delta``. Users no longer guess an iteration count: the plan gives
an upper bound and the validation curve decides where to stop.

Which volumes: the caller may pass them (a workspace's frozen validation cases, a benchmark's
validation split); otherwise :func:`split_validation` holds out a fixed share of the labelled
cases, chosen by a hash of their names (the same cases for every seed and every rerun).
With fewer than ``min_labelled_cases`` labelled cases nothing is held out (every label is
needed for training) and the run follows its iteration budget.

The score is the mean foreground Dice on annotated voxels only (sparse labels work): per
class, the mean over the cases where that class occurs in the truth or the prediction, then
the mean over classes.

Sparse validation slices cannot see errors on the slices nobody annotated: in the per-term
ablation (docs/benchmarks.md 1d) runs without DPR validated at 0.862, like the complete
method, while their test Dice was 0.06-0.14 lower (false positives ~20 mm away). So the
validator also reports ``overreach`` (:func:`overreach_fraction`): the share of each class's
predicted voxels that lie on axial slices where the class is predicted on more than
``OVERREACH_MARGIN`` times its largest annotated cross-section in that volume, a confident
error no label says so. It is logged beside the Dice (``val_overreach``), not used to choose
the best weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from barl_core.data.cross_sections import OVERREACH_MARGIN, class_slice_areas
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.sampler import TrainingVolume
from barl_core.errors import TrainingError

__all__ = ["ValidationConfig", "Validator", "split_validation", "annotated_dice", "overreach_fraction",
           "OVERREACH_MARGIN", "OVERREACH_WARNING"]

# OVERREACH_MARGIN (2.0) is re-exported from barl_core.data.cross_sections, which the
# ``focused2``/``focused3`` rankings read too.
#: Over-reach from which ``barl train`` and the app warn: on hippocampus, round-0 models that
#: worked scored 0.000, broken ones 0.47-0.85 (docs/benchmarks.md 1f).
OVERREACH_WARNING = 0.05


@dataclass
class ValidationConfig:
    """When and on what a run validates.

    Parameters
    ----------
    every : int
        Validate every N iterations (and at the last one); 0 switches validation off.
    patience : int
        Stop after this many validations in a row without improvement; 0 never stops early.
    min_delta : float
        An improvement smaller than this (mean Dice) does not reset the patience.
    fraction : float
        Share of the labelled cases held out when no validation cases are given.
    max_cases : int
        At most this many held-out cases (validation time stays small).
    min_labelled_cases : int
        With fewer labelled cases, none is held out (and validation is off).
    overlap : float
        Sliding-window overlap of the validation predictions.
    gradnorms : bool
        At each validation, also log the gradient norm each loss term contributes
        (``gradnorm_<term>`` in ``metrics.jsonl``; one extra backward pass per term, which is
        why it runs at validations only and is off when validation is).
    """

    every: int = 0
    patience: int = 0
    min_delta: float = 0.002
    fraction: float = 0.2
    max_cases: int = 10
    min_labelled_cases: int = 5
    overlap: float = 0.25
    gradnorms: bool = True

    def __post_init__(self) -> None:
        """Refuse values out of range."""
        if self.every < 0 or self.patience < 0 or self.min_delta < 0:
            raise TrainingError("validation every, patience and min_delta must be >= 0")
        if not 0 < self.fraction < 1:
            raise TrainingError(f"validation fraction must be in (0, 1), got {self.fraction}")
        if self.max_cases < 1 or self.min_labelled_cases < 2:
            raise TrainingError("validation max_cases must be >= 1 and min_labelled_cases >= 2")
        if not 0 <= self.overlap < 1:
            raise TrainingError(f"validation overlap must be in [0, 1), got {self.overlap}")


def _name_hash(name: str) -> float:
    digest = hashlib.sha256(f"validation:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _is_labelled(vol: TrainingVolume, ignore_index: int) -> bool:
    return vol.labels is not None and bool(np.any(vol.labels != ignore_index))


def split_validation(
    volumes: Sequence[TrainingVolume], cfg: ValidationConfig, ignore_index: int = IGNORE_INDEX
) -> tuple[list[TrainingVolume], list[TrainingVolume]]:
    """Hold out a fixed share of the labelled volumes.

    Returns
    -------
    train, validation : list of TrainingVolume
        ``validation`` is empty when validation is off or too few cases are labelled; held-out
        volumes are removed from training entirely (image included).
    """
    labelled = [v for v in volumes if _is_labelled(v, ignore_index)]
    if cfg.every == 0 or len(labelled) < cfg.min_labelled_cases:
        return list(volumes), []
    n_val = min(cfg.max_cases, max(1, int(round(cfg.fraction * len(labelled)))))
    chosen = {v.name for v in sorted(labelled, key=lambda v: _name_hash(v.name))[:n_val]}
    return [v for v in volumes if v.name not in chosen], [v for v in volumes if v.name in chosen]


def annotated_dice(
    pred: np.ndarray, truth: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> list[float]:
    """Per foreground class Dice on the annotated voxels; NaN where the class is in neither."""
    valid = truth != ignore_index
    out = []
    for c in range(1, num_classes):
        p = (pred == c) & valid
        t = (truth == c) & valid
        denom = int(p.sum()) + int(t.sum())
        out.append(float("nan") if denom == 0 else 2.0 * int((p & t).sum()) / denom)
    return out


def overreach_fraction(
    predicted: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    margin: float = OVERREACH_MARGIN,
) -> list[float]:
    """Per foreground class, the share of its predicted voxels on axial slices it over-fills.

    A slice over-fills class ``c`` when ``c`` is predicted there on more than ``margin`` times
    the largest cross-section of ``c`` on any annotated slice of the volume (axis 0). NaN where
    ``c`` is not annotated in the volume (no reference size) or not predicted at all.
    """
    n_fg = max(num_classes - 1, 0)
    refs = class_slice_areas(labels, n_fg, axis=0).max(axis=0, initial=0)
    if 1 <= ignore_index <= n_fg:  # an ignore value that is a class number marks no annotated voxel of it
        refs[ignore_index - 1] = 0
    areas = class_slice_areas(predicted, n_fg, axis=0)
    out = []
    for k in range(n_fg):
        ref, area = float(refs[k]), areas[:, k]
        total = int(area.sum())
        if ref == 0 or total == 0:
            out.append(float("nan"))
            continue
        out.append(float(area[area > margin * ref].sum()) / total)
    return out


class Validator:
    """Scores a network on fixed, already normalised validation volumes.

    Parameters
    ----------
    volumes : list of TrainingVolume
        Validation volumes with labels (255 = not annotated).
    patch_size : sequence of int
        Sliding-window size (the training patch).
    num_classes : int
    ignore_index : int
    overlap : float
    """

    def __init__(
        self,
        volumes: Sequence[TrainingVolume],
        patch_size: Sequence[int],
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        overlap: float = 0.25,
    ):
        self.volumes = [v for v in volumes if _is_labelled(v, ignore_index)]
        if not self.volumes:
            raise TrainingError("validation needs at least one volume with annotated voxels")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.overlap = float(overlap)

    @property
    def names(self) -> list[str]:
        """Return the validation volumes' names."""
        return [v.name for v in self.volumes]

    def score(self, module: nn.Module, device: torch.device | str) -> dict[str, float]:
        """Score ``module`` on the volumes: ``{"dice": mean foreground Dice, "dice_<c>": per class, "overreach"}``.

        ``module`` is left in the train/eval mode it was in.
        """
        from barl_core.inference.model import LoadedModel
        from barl_core.inference.window import sliding_window

        was_training = module.training
        model = LoadedModel.from_module(module, patch_size=self.patch_size, device=device)
        per_class: list[list[float]] = [[] for _ in range(1, self.num_classes)]
        over: list[float] = []
        try:
            for vol in self.volumes:
                res = sliding_window(model, np.asarray(vol.image, np.float32), overlap=self.overlap)
                for k, d in enumerate(annotated_dice(res.labels, vol.labels, self.num_classes, self.ignore_index)):
                    if d == d:
                        per_class[k].append(d)
                over += [f for f in overreach_fraction(res.labels, vol.labels, self.num_classes, self.ignore_index)
                         if f == f]
        finally:
            module.train(was_training)
        means = [float(np.mean(v)) if v else 0.0 for v in per_class]
        out = {"dice": float(np.mean(means)) if means else 0.0}
        out.update({f"dice_{c}": m for c, m in enumerate(means, start=1)})
        if over:
            out["overreach"] = float(np.mean(over))
        return out
