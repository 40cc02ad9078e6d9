"""A training plan from the dataset and the machine: patch, batch, width, iterations, validation.

nnU-Net derives a plan from a dataset *fingerprint* (median shape and spacing) and the GPU's
memory. This planner does the same for the patch, and then sizes the run to the user's
*patience*: it times a few iterations of the configured method on the device at hand and picks
the iteration count that fits ``time_budget_s`` (shrinking the patch when even a short run
would not fit). The timing holds only while the machine stays as fast, so the budget left after
planning also becomes the run's wall-clock limit (``TrainConfig.max_seconds``): if the machine
slows down during the run, the trainer stops in time with what it has
(:mod:`~barl_core.training.deadline`). Without a budget it plans up to ``max_iterations`` and relies on validation
(:mod:`~barl_core.training.validator`) to stop at the plateau.

Every value the user set explicitly (``PlanRequest.fixed``) is kept as given.

Example
-------
>>> fp = DatasetFingerprint(n_cases=10, n_labelled=2, median_shape=(36, 50, 35), annotated_fraction=0.1)
>>> plan_patch(fp, divisor=8, max_voxels=120_000)
(32, 48, 32)
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.sampler import TrainingVolume
from barl_core.errors import TrainingError
from barl_core.networks.unet import required_divisor
from barl_core.training.config import TrainConfig
from barl_core.training.deadline import format_seconds
from barl_core.training.validator import ValidationConfig

__all__ = [
    "DatasetFingerprint",
    "PlanRequest",
    "TrainingPlan",
    "fingerprint",
    "plan_patch",
    "plan_iterations",
    "time_iterations",
    "make_plan",
    "make_planner",
    "parse_duration",
    "PRESET_TIME_BUDGETS",
]

_log = logging.getLogger(__name__)
#: Largest planned patch (voxels) per device type: CPU iterations grow linearly with it.
MAX_PATCH_VOXELS = {"cpu": 48 * 64 * 48, "mps": 64 * 96 * 96, "cuda": 128 * 128 * 128}
#: Share of a time budget left for set-up, validations and the final checkpoint.
BUDGET_RESERVE = 0.15
#: The time budget a preset stands for in the app: ``quick`` = a first useful result in about
#: two minutes (``PlanRequest(time_budget_s=PRESET_TIME_BUDGETS["quick"])``); ``full`` = run to
#: the validation plateau.
PRESET_TIME_BUDGETS: dict[str, float | None] = {"quick": 120.0, "full": None}


@dataclass(frozen=True)
class DatasetFingerprint:
    """What the plan depends on, measured on the (resampled, normalised) training volumes.

    Attributes
    ----------
    n_cases, n_labelled : int
        Volumes, and volumes with at least one annotated voxel.
    median_shape : tuple of int
        Median ``(z, y, x)`` voxels.
    annotated_fraction : float
        Annotated voxels / all voxels of the labelled volumes (sparse labels: small).
    """

    n_cases: int
    n_labelled: int
    median_shape: tuple[int, int, int]
    annotated_fraction: float


@dataclass
class PlanRequest:
    """What the user asked of the plan.

    Parameters
    ----------
    time_budget_s : float or None
        Wall seconds the training may take (None: up to ``max_iterations``, validation stops it).
    fixed : frozenset of str
        Config fields the user gave explicitly (``patch_size``, ``iterations``,
        ``batch_labeled``, ``batch_unlabeled``, ``validation``); the plan keeps them.
    max_iterations : int
        Upper bound of the iteration count.
    min_iterations : int
        Below this many iterations in the budget, the patch is shrunk (when not fixed).
    timing_iterations : int
        Iterations timed (after one warm-up) to measure the speed.
    report : callable, optional
        Receives progress text ("timing 3 iterations ...").
    """

    time_budget_s: float | None = None
    fixed: frozenset[str] = frozenset()
    max_iterations: int = 3000
    min_iterations: int = 150
    timing_iterations: int = 3
    report: Callable[[str], None] | None = None


@dataclass
class TrainingPlan:
    """The resolved plan (what ``barl train`` prints)."""

    fingerprint: DatasetFingerprint
    patch_size: tuple[int, int, int]
    batch_labeled: int
    batch_unlabeled: int
    base_channels: int
    iterations: int
    seconds_per_iteration: float
    time_budget_s: float | None
    validation_every: int
    patience: int
    notes: list[str] = field(default_factory=list)
    #: The run's wall-clock limit (``TrainConfig.max_seconds``): the budget minus the planning.
    max_seconds: float | None = None

    @property
    def expected_seconds(self) -> float:
        """Return the planned iterations times the timed seconds per iteration."""
        return self.iterations * self.seconds_per_iteration

    def to_dict(self) -> dict:
        """Return the plan as plain data (it travels from a training child to the app)."""
        return {
            "patch_size": [int(v) for v in self.patch_size],
            "iterations": int(self.iterations),
            "seconds_per_iteration": float(self.seconds_per_iteration),
            "expected_seconds": float(self.expected_seconds),
            "time_budget_s": self.time_budget_s,
            "max_seconds": self.max_seconds,
            "validation_every": int(self.validation_every),
            "base_channels": int(self.base_channels),
            "notes": list(self.notes),
            "text": self.describe(),
        }

    def describe(self) -> str:
        """Multi-line human-readable plan."""
        fp = self.fingerprint
        budget = f"{self.time_budget_s / 60:.1f} min" if self.time_budget_s else "none (validation stops the run)"
        val = (f"every {self.validation_every} iterations, stop after {self.patience} without improvement"
               if self.validation_every else "off")
        lines = [
            f"plan: {fp.n_cases} cases ({fp.n_labelled} labelled, {100 * fp.annotated_fraction:.1f}% of their "
            f"voxels annotated), median shape {'x'.join(map(str, fp.median_shape))}",
            f"  patch {'x'.join(map(str, self.patch_size))}, batch {self.batch_labeled}+{self.batch_unlabeled}, "
            f"width {self.base_channels}",
            f"  {self.seconds_per_iteration:.3f} s/iteration measured -> {self.iterations} iterations "
            f"(~{self.expected_seconds / 60:.1f} min; budget {budget})",
            f"  validation {val}",
        ]
        if self.max_seconds is not None:
            lines.append(f"  deadline: training stops after {format_seconds(self.max_seconds)}, with a final "
                         "validation and its model saved, even if the machine slows down")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"2m"``, ``"1.5h"`` -> seconds.

    Raises
    ------
    TrainingError
        Not a positive duration.
    """
    s = str(text).strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(s[-1:], None)
    number = s[:-1] if scale else s
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise TrainingError(f"cannot read the time budget {text!r}: use e.g. 90s, 2m or 1.5h") from None
    if not value > 0:
        raise TrainingError(f"the time budget must be positive, got {text!r}")
    return value


def fingerprint(volumes: Sequence[TrainingVolume], ignore_index: int = IGNORE_INDEX) -> DatasetFingerprint:
    """Median shape and label statistics of the training volumes."""
    if not volumes:
        raise TrainingError("cannot plan training without volumes")
    shapes = np.array([v.image.shape for v in volumes])
    median = tuple(int(round(float(m))) for m in np.median(shapes, axis=0))
    labelled = [v for v in volumes if v.labels is not None and bool(np.any(v.labels != ignore_index))]
    annotated = sum(int(np.count_nonzero(v.labels != ignore_index)) for v in labelled)
    total = sum(int(v.labels.size) for v in labelled)
    return DatasetFingerprint(len(volumes), len(labelled), median, annotated / total if total else 0.0)  # type: ignore[arg-type]


def plan_patch(fp: DatasetFingerprint, divisor: int, max_voxels: int) -> tuple[int, int, int]:
    """Return the training patch for a dataset fingerprint.

    The median shape rounded *down* to the network's divisor (the median volume holds the
    patch without padding), then the longest side shrunk by one divisor at a time until the
    patch holds ``max_voxels``.

    Rounded down, not up: a patch larger than the volume is mostly padding, and on hippocampus
    the rounded-up, whole-volume patch 40x56x40 reached 0.767 mean foreground Dice (2000
    iterations, all pool cases labelled) where 32x48x32 crops had reached 0.868
    (docs/benchmarks.md, section 1b). Training then padded with the image minimum and the
    sliding window with edge values; both now pad alike (:mod:`barl_core.data.padding`), and
    the rounded-up patch has not been measured again since.
    """
    patch = [max(divisor, (int(s) // divisor) * divisor) for s in fp.median_shape]
    while math.prod(patch) > max_voxels and max(patch) > divisor:
        i = int(np.argmax(patch))
        patch[i] -= divisor
    return tuple(patch)  # type: ignore[return-value]


def plan_iterations(seconds_per_iteration: float, time_budget_s: float | None, max_iterations: int) -> int:
    """Return the iterations that fit the budget after :data:`BUDGET_RESERVE`, at most ``max_iterations``."""
    if time_budget_s is None:
        return max_iterations
    usable = time_budget_s * (1.0 - BUDGET_RESERVE)
    return int(max(1, min(max_iterations, usable // max(seconds_per_iteration, 1e-6))))


def time_iterations(config: TrainConfig, volumes: list[TrainingVolume], n: int = 3) -> float:
    """Median wall seconds of ``n`` training iterations (after one warm-up) of ``config``."""
    from barl_core.training.trainer import Trainer

    cfg = replace(config, iterations=max(1000, n + 1), checkpoint_every=0, validation=ValidationConfig())
    with tempfile.TemporaryDirectory(prefix="barl_plan_") as tmp:
        trainer = Trainer(cfg, volumes, tmp)
        trainer.initialize()
        times = []
        for it in range(n + 1):
            t0 = time.perf_counter()
            trainer.train_step(it)
            times.append(time.perf_counter() - t0)
        trainer.close()
    return float(statistics.median(times[1:]))


def _validation_plan(iterations: int) -> tuple[int, int]:
    """About 20 validations per run (25 to 250 iterations apart), patience 5."""
    return int(min(250, max(25, iterations // 20))), 5


def make_plan(config: TrainConfig, volumes: list[TrainingVolume], request: PlanRequest) -> tuple[TrainConfig, TrainingPlan]:
    """Fingerprint, patch, timing and iteration count; returns the planned config and the plan."""
    fp = fingerprint(volumes, config.ignore_index)
    fixed = request.fixed
    notes: list[str] = []
    cfg = config
    if "patch_size" not in fixed:
        from barl_core.runtime.device import resolve_device

        device = resolve_device(cfg.device).type
        patch = plan_patch(fp, required_divisor(cfg.network), MAX_PATCH_VOXELS.get(device, MAX_PATCH_VOXELS["cpu"]))
        cfg = replace(cfg, patch_size=patch)
    say = request.report or (lambda text: None)
    started = time.perf_counter()

    def budget_left() -> float | None:  # the timing runs are part of the user's budget
        if request.time_budget_s is None:
            return None
        return max(1e-3, request.time_budget_s - (time.perf_counter() - started))

    say(f"timing {request.timing_iterations} iterations of {cfg.method} at patch {'x'.join(map(str, cfg.patch_size))} ...")
    sec = time_iterations(cfg, volumes, request.timing_iterations)
    iterations = cfg.iterations if "iterations" in fixed else plan_iterations(sec, budget_left(), request.max_iterations)
    divisor = required_divisor(cfg.network)
    enough = min(request.min_iterations, request.max_iterations)
    while ("patch_size" not in fixed and "iterations" not in fixed and iterations < enough
           and max(cfg.patch_size) > 2 * divisor):
        i = int(np.argmax(cfg.patch_size))
        smaller = list(cfg.patch_size)
        smaller[i] = max(2 * divisor, (smaller[i] // 2) // divisor * divisor)
        notes.append(f"patch {'x'.join(map(str, cfg.patch_size))} allows only {iterations} iterations in the "
                     f"budget; halved to {'x'.join(map(str, smaller))}")
        cfg = replace(cfg, patch_size=tuple(smaller))
        say(f"timing again at patch {'x'.join(map(str, cfg.patch_size))} ...")
        sec = time_iterations(cfg, volumes, request.timing_iterations)
        iterations = plan_iterations(sec, budget_left(), request.max_iterations)
    if iterations < enough and request.time_budget_s is not None:
        notes.append(f"only {iterations} iterations fit the budget: expect an under-trained model")
    every, patience = _validation_plan(iterations)
    if "validation" in fixed:
        every, patience = cfg.validation.every, cfg.validation.patience
    else:
        cfg = replace(cfg, validation=replace(cfg.validation, every=every, patience=patience))
    # the budget left is also a deadline: a machine that slows down later must not overrun it
    limit = budget_left() if request.time_budget_s is not None else cfg.max_seconds
    cfg = replace(cfg, iterations=int(iterations), max_seconds=limit).validate()
    plan = TrainingPlan(
        fingerprint=fp, patch_size=tuple(cfg.patch_size), batch_labeled=cfg.batch_labeled,  # type: ignore[arg-type]
        batch_unlabeled=cfg.batch_unlabeled, base_channels=cfg.network.base_channels, iterations=cfg.iterations,
        seconds_per_iteration=sec, time_budget_s=request.time_budget_s, validation_every=every,
        patience=patience, notes=notes, max_seconds=cfg.max_seconds,
    )
    return cfg, plan


def make_planner(
    request: PlanRequest, on_plan: Callable[[TrainingPlan], None] | None = None
) -> Callable[[TrainConfig, list[TrainingVolume]], TrainConfig]:
    """Return the ``planner`` argument of :func:`barl_core.training.run.train`.

    It plans, hands the plan to ``on_plan`` (e.g. to print it) and returns the planned config.
    """

    def planner(config: TrainConfig, volumes: list[TrainingVolume]) -> TrainConfig:
        cfg, plan = make_plan(config, volumes, request)
        _log.info("%s", plan.describe())
        if on_plan is not None:
            on_plan(plan)
        return cfg

    return planner
