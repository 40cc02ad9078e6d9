"""Training runs and iteration timing through ``barl_core``'s public API (nothing re-implemented)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.data.labels import IGNORE_INDEX

from .cases import BenchCase

#: Optimiser and learning rate of every benchmark run (see :func:`build_train_config`).
BENCH_OPTIMIZER = "adamw"
BENCH_LR = 3e-3


def build_train_config(
    *,
    method: str,
    iterations: int,
    patch: Sequence[int],
    base_channels: int,
    num_classes: int,
    seed: int,
    disable: Sequence[str] = (),
    batch_labeled: int = 2,
    batch_unlabeled: int = 2,
    device: str = "cpu",
    class_names: Sequence[str] | None = None,
    num_threads: int | None = None,
    log_every: int = 1,
    optimizer: str = BENCH_OPTIMIZER,
    lr: float = BENCH_LR,
    validation: Mapping[str, Any] | None = None,
    overrides: Mapping[str, float] | None = None,
) -> Any:
    """A :class:`barl_core.training.config.TrainConfig` for one benchmark run.

    Every method gets the same schedule (AdamW at ``BENCH_LR`` with the poly decay and
    ramp-up of the ``quick`` preset: on CPU-sized runs of a few hundred iterations, the
    design note's SGD at lr 0.01 leaves every method at foreground Dice ~0 on hippocampus),
    patch, batch and network width, so only the method differs between runs. Periodic
    checkpoints are off (only the final model is written): benchmarks never resume a run.
    ``validation`` holds :class:`barl_core.training.validator.ValidationConfig` fields
    (``every``, ``patience``); off by default. ``overrides`` changes method settings on top
    of the preset's: a :class:`barl_core.losses.config.LossConfig` field (``dpr``, ``pcbc``,
    ``dpr_threshold``, ...) or a top-level field (``cps_weight``, ``consistency_weight``).
    """
    import dataclasses

    from barl_core.losses.config import LossConfig
    from barl_core.training.config import default_class_names, preset

    loss_fields = {f.name for f in dataclasses.fields(LossConfig)}
    overrides = dict(overrides or {})
    losses = {k: v for k, v in overrides.items() if k in loss_fields}
    top = {k: v for k, v in overrides.items() if k not in loss_fields}

    names = tuple(class_names) if class_names else default_class_names(num_classes)
    return preset(
        "quick",
        method=method,
        iterations=int(iterations),
        patch_size=tuple(int(p) for p in patch),
        batch_labeled=int(batch_labeled),
        batch_unlabeled=int(batch_unlabeled),
        seed=int(seed),
        device=device,
        disable=tuple(disable),
        checkpoint_every=0,
        log_every=int(log_every),
        class_names=names,
        num_threads=num_threads,
        optimizer=optimizer,
        lr=float(lr),
        network={"base_channels": int(base_channels), "num_classes": len(names)},
        validation=dict(validation or {}),
        **({"losses": losses} if losses else {}),
        **top,
    )


def train_model(
    config: Any,
    images_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    *,
    init_from: Path | None = None,
    callback: Callable[[Any], None] | None = None,
) -> tuple[Path, float]:
    """Train with :func:`barl_core.training.run.train`; return (model path, wall seconds)."""
    from barl_core.training.run import train

    t0 = time.perf_counter()
    result = train(config, images_dir, labels_dir, out_dir, init_from=init_from, callback=callback)
    return Path(result.model_path), time.perf_counter() - t0


def train_with_curve(
    config: Any,
    images_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    *,
    validation: Mapping[str, BenchCase] | None = None,
    validation_labels: Mapping[str, np.ndarray] | None = None,
    diagnostic: Mapping[str, tuple[BenchCase, np.ndarray]] | None = None,
) -> tuple[Any, float, list[dict]]:
    """Train with held-out validation cases; return (TrainResult, wall seconds, learning curve).

    The curve has one point per validation: ``{"iteration", "seconds", "dice"}``, seconds
    counted from the start of the call (data loading included), and ``overreach`` (the
    validator's share of predicted voxels on over-filled slices) when the run logged it.
    ``validation_labels`` are the label maps the validation sees (e.g. sparse); the cases' full
    truth otherwise.
    ``diagnostic`` maps labelled training cases to the labels the engine saw (sparse): each
    branch's Dice on their *unannotated* voxels is added to the curve (``pseudo_dice_a/_b``).
    """
    from barl_core.data.dataset import Case
    from barl_core.training.run import train

    val_cases = None
    if validation:
        val_cases = [
            Case(name, c.image, np.asarray((validation_labels or {}).get(name, c.truth), np.uint8),
                 c.image_path or Path(f"{name}.nii.gz"), None)
            for name, c in validation.items()
        ]
    diag_cases = None
    if diagnostic:
        diag_cases = [
            Case(name, c.image, np.where(np.asarray(seen) == IGNORE_INDEX, c.truth, IGNORE_INDEX).astype(np.uint8),
                 c.image_path or Path(f"{name}.nii.gz"), None)
            for name, (c, seen) in diagnostic.items()
        ]
    t0_epoch, t0 = time.time(), time.perf_counter()
    result = train(config, images_dir, labels_dir, out_dir, validation_cases=val_cases, diagnostic_cases=diag_cases)
    seconds = time.perf_counter() - t0
    curve = [{"iteration": int(r["iteration"]), "seconds": round(float(r["time"]) - t0_epoch, 2),
              "dice": float(r["val_dice"]),
              **{k[4:]: float(v) for k, v in r.items()
                 if k.startswith("val_pseudo_dice_") or k == "val_overreach"},
              **_term_diagnostics(r)}
             for r in result.history if "val_dice" in r]
    return result, seconds, curve


def _term_diagnostics(row: Mapping[str, Any]) -> dict[str, float]:
    """A validation row's per-term gradient norms, weights and cosines, and the terms' losses."""
    terms = [k[len("gradnorm_"):] for k in row if k.startswith("gradnorm_")]
    out = {k: float(v) for k, v in row.items() if k.startswith(("gradnorm_", "gradweight_", "gradcos_"))}
    out.update({f"loss_{t}": float(row[t]) for t in terms if t in row})
    return out


def iteration_times(
    config: Any,
    cases: Mapping[str, BenchCase],
    labels: Mapping[str, np.ndarray | None],
    run_dir: Path,
    *,
    save_to: Path | None = None,
) -> list[float]:
    """Wall seconds of each of ``config.iterations`` training steps, measured in memory.

    Uses :func:`barl_core.training.prepare.prepare_training_data` and :class:`barl_core.training.trainer.Trainer`
    (its ``train_step`` hook) so the timing holds the step only (sampling, forward, backward,
    optimiser), not set-up, logging or checkpoint writes. CUDA work is synchronised before
    each clock read. ``save_to`` writes the resulting checkpoint there.
    """
    import torch

    from barl_core.data.dataset import Case
    from barl_core.training.prepare import prepare_training_data
    from barl_core.training.trainer import Trainer

    engine_cases = [
        Case(name, case.image, None if labels.get(name) is None else np.asarray(labels[name], np.uint8),
             case.image_path or Path(f"{name}.nii.gz"), None)
        for name, case in cases.items()
    ]
    volumes, stats, names = prepare_training_data(engine_cases, config)
    trainer = Trainer(config.with_classes(names), volumes, run_dir, norm_stats=stats)
    trainer.initialize()
    cuda = trainer.device.type == "cuda"
    times = []
    for it in range(config.iterations):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.train_step(it)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if save_to is not None:  # a (barely trained) model, e.g. to time prediction
        trainer.save_checkpoint(save_to)
    return times


def robust_iteration_time(times: Sequence[float], warmup: int = 1) -> float:
    """Median iteration time after dropping ``warmup`` iterations (set-up, allocator warm-up)."""
    kept = list(times[warmup:]) or list(times)
    if not kept:
        raise ValueError("no iteration was timed")
    return float(np.median(kept))


def set_threads(n: int | None) -> None:
    """Pin torch's intra-op threads (``None`` keeps torch's default: all cores)."""
    if n:
        import torch

        torch.set_num_threads(int(n))
