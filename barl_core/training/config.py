"""Training configuration: one dataclass tree, presets, validation and a JSON round trip.

Every choice of the method (design note ``barl_method.md``) is a field here, not a constant in
code, so an ablation or a baseline is a config, and a run directory's ``config.json`` (and the
checkpoint's ``"config"``) is enough to reproduce it.

Example
-------
>>> cfg = preset("quick", method="cps", iterations=50)
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import typing
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from barl_core.data.augment import AugmentConfig
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.normalization import NormalizationConfig
from barl_core.errors import TrainingError
from barl_core.losses.config import ALIGNMENT_TERMS, LossConfig
from barl_core.networks.unet import NetworkConfig, required_divisor
from barl_core.training.config_dict import from_dict, plain
from barl_core.training.validator import ValidationConfig

__all__ = [
    "TrainConfig",
    "METHODS",
    "OPTIMIZERS",
    "LOSS_TERMS",
    "PRESETS",
    "preset",
    "parse_disable",
    "default_class_names",
]

#: Training methods, all run through the same sampler, augmentation and schedule.
METHODS = ("barl", "supervised", "mean-teacher", "cps")
#: Optimisers: ``sgd`` (Nesterov, the design note's default) or ``adamw`` (converges in far
#: fewer iterations, which suits short CPU runs and interactive fine-tuning).
OPTIMIZERS = ("sgd", "adamw")
#: BARL loss terms that ``disable`` can switch off (ablations).
LOSS_TERMS = ALIGNMENT_TERMS
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: Ranges a config is validated against (a typo like 1e999 must not train forever).
MAX_ITERATIONS = 10_000_000
MAX_PATCH_SIDE = 1024
MAX_BATCH_OR_COUNT = 1_000_000


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """``("background", "class_1", ...)`` when the user named no classes."""
    return ("background",) + tuple(f"class_{i}" for i in range(1, num_classes))


def parse_disable(value: str | typing.Iterable[str] | None) -> tuple[str, ...]:
    """``"dpr, pcbc"`` or ``["dpr"]`` -> ``("dpr", "pcbc")``, checking each name."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(s.strip().lower() for s in items if s and s.strip()))
    bad = [n for n in names if n not in LOSS_TERMS]
    if bad:
        raise TrainingError(
            f"cannot disable {', '.join(map(repr, bad))}: the switchable BARL loss terms are "
            f"{', '.join(LOSS_TERMS)}"
        )
    return names


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data.

    Parameters
    ----------
    method : {"barl", "supervised", "mean-teacher", "cps"}
        What to train; see :mod:`barl_core.training.methods`.
    iterations : int
        Optimiser steps of the schedule (poly decay and ramp-up are relative to it).
    max_seconds : float or None
        Wall-clock limit of the training loop: the run stops early, with a final validation
        and its model saved, once another iteration would pass it (stop reason
        ``"time budget"``; see :mod:`~barl_core.training.deadline`). The planner sets it from a
        time budget; None (default) runs all ``iterations``. Counted afresh by a resumed run.
    patch_size : tuple of int
        ``(z, y, x)`` training patch; a multiple of the network's divisor (8 for depth 4).
        Also the default inference window.
    batch_labeled, batch_unlabeled : int
        Patches per iteration drawn around annotated voxels / anywhere.
    optimizer : {"sgd", "adamw"}
        Nesterov SGD (design note default) or AdamW; both follow the poly schedule.
        AdamW wants a smaller ``lr`` (about 1e-3 to 3e-3) and ignores ``momentum``.
    lr, momentum, weight_decay, poly_power : float
        Peak learning rate, decayed as ``lr * (1 - it / iterations) ** poly_power``
        (design note defaults: SGD, 0.01, 0.9, 1e-4, 0.9).
    foreground_fraction : float
        Probability that a labelled patch is centred on a voxel of a random annotated
        foreground class rather than on any annotated voxel (small structures are
        otherwise rarely seen); see :class:`~barl_core.data.sampler.PatchSampler`.
    seed : int
        Seeds torch, numpy, Python's ``random``, the sampler and the augmentation.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"cpu"``.
    amp : bool
        Mixed precision; only effective on CUDA.
    checkpoint_every : int
        Write ``checkpoints/ckpt_XXXXXX.pt`` every N iterations (0: only at the end).
    keep_checkpoints : int
        How many periodic checkpoints to keep (oldest removed first).
    log_every : int
        Report progress and append to ``metrics.jsonl`` every N iterations.
    disable : tuple of str
        BARL terms switched off, a subset of ``LOSS_TERMS`` (on top of the ``use_*``
        switches of ``losses``; the ramp-up length is ``losses.rampup_fraction``).
    class_names : tuple of str or None
        Names of classes ``0..K-1`` (background first); None infers K from the labels.
    ignore_index : int
        Label value of unannotated voxels.
    target_spacing : tuple of float or None
        Working resolution ``(z, y, x)`` in mm; None trains on the native grid.
    ema_decay : float
        Mean Teacher's teacher EMA decay.
    consistency_weight : float
        Mean Teacher's consistency (softmax MSE) weight.
    cps_weight : float
        Weight of the cross pseudo supervision term.
    num_threads : int or None
        ``torch.set_num_threads`` for the run (None: torch's default).
    fixed_normalization : bool
        One set of statistics over all training images, stored in the checkpoint and
        used at predict time; False (default) normalises every volume by itself.
    network, losses, normalization, augment
        Nested configs of :mod:`~barl_core.networks.unet`, :mod:`~barl_core.losses.config`,
        :mod:`~barl_core.data.dataset` and :mod:`~barl_core.data.augment`.
    validation : ValidationConfig
        Held-out validation during training (:mod:`~barl_core.training.validator`): every N
        iterations, best checkpoint, plateau stop; off (``every=0``) by default.
    """

    method: str = "barl"
    iterations: int = 200
    max_seconds: float | None = None
    patch_size: tuple[int, int, int] = (32, 64, 64)
    batch_labeled: int = 2
    batch_unlabeled: int = 2
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    foreground_fraction: float = 0.33
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    log_every: int = 1
    disable: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    ignore_index: int = IGNORE_INDEX
    target_spacing: tuple[float, float, float] | None = None
    ema_decay: float = 0.99
    consistency_weight: float = 0.1
    cps_weight: float = 1.0
    num_threads: int | None = None
    fixed_normalization: bool = False
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(base_channels=8))
    losses: LossConfig = field(default_factory=LossConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Raise :class:`TrainingError` with a clear message on any unusable value."""
        if self.method not in METHODS:
            raise TrainingError(
                f"unknown training method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        parse_disable(self.disable)
        if self.disable and self.method != "barl":
            raise TrainingError(
                f"--disable applies to BARL's loss terms only, not to method {self.method!r}"
            )
        if not _is_int(self.iterations) or not 1 <= self.iterations <= MAX_ITERATIONS:
            raise TrainingError(
                f"iterations must be a whole number in 1..{MAX_ITERATIONS:,}, got {self.iterations!r}"
            )
        if self.max_seconds is not None and (
            isinstance(self.max_seconds, bool) or not isinstance(self.max_seconds, numbers.Real)
            or not 0 < self.max_seconds < float("inf")
        ):
            raise TrainingError(f"max_seconds must be a positive number of seconds or None, got {self.max_seconds!r}")
        if (
            not isinstance(self.patch_size, (tuple, list)) or len(self.patch_size) != 3
            or not all(_is_int(s) and 1 <= s <= MAX_PATCH_SIDE for s in self.patch_size)
        ):
            raise TrainingError(
                f"patch size must be three whole numbers in 1..{MAX_PATCH_SIDE} (z, y, x), "
                f"got {self.patch_size!r}"
            )
        for name in ("batch_labeled", "batch_unlabeled", "checkpoint_every", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            if not _is_int(value) or value > MAX_BATCH_OR_COUNT:
                raise TrainingError(f"{name} must be a whole number up to {MAX_BATCH_OR_COUNT:,}, got {value!r}")
        divisor = required_divisor(self.network)
        bad = [int(s) for s in self.patch_size if int(s) % divisor]
        if bad:
            raise TrainingError(
                f"patch size {tuple(self.patch_size)} is not divisible by {divisor} (the network "
                f"down-samples {self.network.depth - 1} times); use multiples of {divisor}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if not 0 <= self.foreground_fraction <= 1:
            raise TrainingError(f"foreground_fraction must be in [0, 1], got {self.foreground_fraction}")
        if self.batch_labeled < 1:
            raise TrainingError("batch_labeled must be >= 1 (training needs annotated patches)")
        if self.batch_unlabeled < 0:
            raise TrainingError("batch_unlabeled must be >= 0")
        for name in ("lr", "poly_power"):
            if not getattr(self, name) > 0:
                raise TrainingError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise TrainingError("momentum must be in [0, 1) and weight_decay >= 0")
        if not 0 < self.ema_decay < 1:
            raise TrainingError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not _DEVICE_RE.match(str(self.device)):
            raise TrainingError(
                f"unknown device {self.device!r}; use auto, cpu, mps, cuda or cuda:N"
            )
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise TrainingError("checkpoint_every must be >= 0, keep_checkpoints and log_every >= 1")
        if not 0 <= self.ignore_index <= 65535:
            raise TrainingError(f"ignore_index must be a label value (0..65535), got {self.ignore_index}")
        if self.class_names is not None:
            names = tuple(self.class_names)
            if len(names) < 2:
                raise TrainingError("give at least two class names (background and one class)")
            if len(set(names)) != len(names) or any(not str(n).strip() for n in names):
                raise TrainingError(f"class names must be unique and non-empty, got {names}")
            if len(names) != self.network.num_classes:
                raise TrainingError(
                    f"{len(names)} class names for a network of {self.network.num_classes} classes"
                )
        if self.target_spacing is not None and (
            len(self.target_spacing) != 3 or min(self.target_spacing) <= 0
        ):
            raise TrainingError(f"target spacing must be three positive numbers (z, y, x), got {self.target_spacing}")
        if self.num_threads is not None and self.num_threads < 1:
            raise TrainingError(f"num_threads must be >= 1, got {self.num_threads}")
        return self

    def with_classes(self, class_names: typing.Sequence[str]) -> TrainConfig:
        """Copy with ``class_names`` set and the network's output count matching them."""
        names = tuple(str(n) for n in class_names)
        return replace(
            self, class_names=names, network=replace(self.network, num_classes=len(names))
        )

    # ------------------------------------------------------------------ JSON round trip
    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON and ``weights_only``-safe) nested dict; tuples become lists."""
        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (typos must not pass silently)."""
        try:
            cfg = from_dict(cls, data, "config")
        except TrainingError:
            raise
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"invalid training configuration: {exc}") from None
        return cfg


#: The method settings both presets share: the presets differ in compute only (issue 11, "one
#: method, two scales"). Evidence for each value (docs/method.md, docs/benchmarks.md):
#: - AdamW at 3e-3 with the poly decay: the design note's SGD at lr 0.01 had barely left the
#:   start after 250 CPU iterations (hippocampus: foreground Dice 0.00 vs 0.71 with AdamW).
#: - The design note's weights (DPR 1.0, PCBC 0.5, CPS 1.0), ramped up over a fixed 600
#:   iterations instead of 40% of the run. At 1500 iterations (ramp 600 either way) they beat a
#:   tenth of them (sparse 10%, hippocampus, 3 seeds: docs/benchmarks.md 1c). With the ramp tied
#:   to the run's length they had collapsed 250-iteration runs to background (CPS 0.00 at 1.0,
#:   0.64/0.76 at 0.1; BARL 0.00, 0.49/0.74 at a tenth), because the full weight arrived at
#:   iteration 100; over a fixed 600 a 250-iteration run ends at 18% of them, close to the
#:   tenth that worked there, so one setting serves a 2-minute run and a long one.
#: - PCBC's area normalisation floored at 25% of the patch instead of 1%: PCBC averages its CE
#:   over the disagreement voxels, so once the branches agree on all but a few percent of the
#:   patch each contested voxel is pushed 1/area times harder than in CPS; that erased the
#:   smaller class (5% of cases fully labelled: anterior Dice 0.00 with 1%, 0.63 with 25%).
METHOD_SETTINGS: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 3e-3,
    "losses": {"dpr": 1.0, "pcbc": 0.5, "pcbc_area_floor": 0.25, "rampup_iterations": 600},
    "cps_weight": 1.0,
}

#: Named starting points: ``quick`` for a CPU laptop, ``full`` for a GPU. They differ in
#: compute (patch, width, iterations, checkpoint interval), not in the method.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        **METHOD_SETTINGS,
        "iterations": 200,
        "patch_size": (32, 64, 64),
        "checkpoint_every": 50,
        "network": {"base_channels": 8},
    },
    "full": {
        **METHOD_SETTINGS,
        "iterations": 6000,
        "patch_size": (96, 96, 96),
        "checkpoint_every": 500,
        "network": {"base_channels": 16},
    },
}


def preset(name: str = "quick", **overrides: Any) -> TrainConfig:
    """Return a preset config with field overrides (``network=``/``losses=`` may be dicts of changes).

    Raises
    ------
    TrainingError
        Unknown preset name or invalid resulting config.
    """
    if name not in PRESETS:
        raise TrainingError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name])
    cfg = TrainConfig()
    for nested in ("network", "losses", "validation"):  # nested configs: a preset/override dict is a patch
        changes = dict(values.pop(nested, {}))
        given = overrides.pop(nested, None)
        if isinstance(given, dict):
            changes.update(given)
            given = None
        values[nested] = given or replace(getattr(cfg, nested), **changes)
    cfg = TrainConfig(**values)
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise TrainingError(f"unknown config field(s) {', '.join(unknown)}")
        if "disable" in overrides:
            overrides["disable"] = parse_disable(overrides["disable"])
        cfg = replace(cfg, **overrides)
    return cfg.validate()
