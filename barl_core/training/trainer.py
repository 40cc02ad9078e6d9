"""The training loop: device, precision, schedule, callbacks, cancellation.

The :class:`Trainer` knows nothing of BARL: a method (:mod:`~barl_core.training.methods`) turns a
batch into losses, the trainer does everything around it. Its :meth:`Trainer.run_training`
reads as the list of hooks it calls (nnU-Net's shape); a variant overrides a hook. The hooks
that are a concept of their own live beside it as mixins:
:class:`~barl_core.training.oom.OutOfMemoryBackoff` (``train_step``),
:class:`~barl_core.training.resume.CheckpointHooks` (checkpoints, resume, fine-tune) and
:class:`~barl_core.training.validation_hooks.ValidationHooks` (validation, best weights,
patience). :func:`barl_core.training.run.train` is the one-call entry point.

A run directory holds::

    RUN_DIR/config.json                   the resolved TrainConfig (classes included)
    RUN_DIR/metrics.jsonl                 one JSON line per logged iteration
    RUN_DIR/checkpoints/ckpt_000050.pt    periodic checkpoints (the last few kept)
    RUN_DIR/best.pt                       with validation: the best validated weights
    RUN_DIR/model.pt                      the final model

Under ``torchrun`` (see :mod:`~barl_core.training.distributed` and ``docs/multi_gpu.md``) every rank
runs this same loop on its own patches, DistributedDataParallel averages the gradients, and
only rank 0 writes the run directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from barl_core.data.normalization import NormStats
from barl_core.data.sampler import PatchSampler, TrainingVolume
from barl_core.errors import EmptyDatasetError, TrainingError
from barl_core.io.volume import atomic_path
from barl_core.runtime.cancel import CancelToken
from barl_core.runtime.device import resolve_device
from barl_core.training import distributed
from barl_core.training.checkpoint import load_checkpoint, save_checkpoint
from barl_core.training.config import TrainConfig
from barl_core.training.deadline import (
    STOP_PLATEAU,
    STOP_TIME_BUDGET,
    Deadline,
    describe_stop,
    format_seconds,
)
from barl_core.training.gradnorm import term_gradient_norms
from barl_core.training.methods import TrainingMethod, build_method
from barl_core.training.oom import OutOfMemoryBackoff
from barl_core.training.profiling import PhaseTimer
from barl_core.training.resume import CheckpointHooks
from barl_core.training.validation_hooks import ValidationHooks

__all__ = ["DEBUG_DUMP_ENV", "TrainProgress", "TrainResult", "Trainer", "build_optimizer"]

ProgressCallback = Callable[["TrainProgress"], None]
#: Debugging aid (used by the multi-process test): every rank saves its final weights,
#: its initial weights and a digest of the patches it drew to ``$BARL_DEBUG_DUMP_WEIGHTS/rankN.pt``.
DEBUG_DUMP_ENV = "BARL_DEBUG_DUMP_WEIGHTS"
_log = logging.getLogger(__name__)


@dataclass
class TrainProgress:
    """What a progress callback receives after each logged iteration."""

    iteration: int
    total: int
    losses: dict[str, float]
    its_per_s: float
    eta_s: float
    lr: float
    #: Non-empty for a notice rather than a loss report (e.g. an out-of-memory retry with
    #: a smaller batch); ``losses`` is then empty.
    message: str = ""
    #: After a validation: ``{"dice": ..., "dice_<c>": ..., "best": ..., "best_iteration": ...}``.
    validation: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    model_path : Path
        ``RUN_DIR/model.pt`` when completed; the checkpoint written at cancellation otherwise.
    iterations_done : int
    status : {"completed", "cancelled"}
    history : list of dict
        The metric rows (one per logged iteration) of this run, resumed part included.
    best_iteration : int or None
        With validation: the iteration whose weights ``model.pt`` holds (best validation Dice).
    best_score : float or None
        That validation mean foreground Dice.
    stopped_early : bool
        True when the run completed before its iteration count (``stop_reason`` says why).
    stop_reason : str
        ``""`` (ran all iterations, or was cancelled), ``"plateau"`` (the validation Dice
        stopped improving, ``validation.patience``) or ``"time budget"`` (``max_seconds``).
    summary : str
        How it ended in plain words (:func:`~barl_core.training.deadline.describe_stop`),
        e.g. ``"after 37 of 215 iterations: stopped at the time limit (2.0 min)"``.
    """

    model_path: Path
    iterations_done: int
    status: str
    history: list[dict] = field(default_factory=list)
    best_iteration: int | None = None
    best_score: float | None = None
    stopped_early: bool = False
    stop_reason: str = ""
    summary: str = ""


def build_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """Build the optimiser named by ``config.optimizer``; the trainer sets its lr every step.

    Nesterov SGD is the design note's default; AdamW adapts per-parameter step sizes and
    gets a small network to a usable model in a fraction of the iterations, which is what
    short CPU runs and interactive fine-tuning rounds need.

    Raises
    ------
    TrainingError
        Unknown optimiser name.
    """
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay, nesterov=True,
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise TrainingError(f"unknown optimizer {config.optimizer!r}; choose one of sgd, adamw")



class Trainer(OutOfMemoryBackoff, CheckpointHooks, ValidationHooks):
    """Runs a :class:`~barl_core.training.methods.TrainingMethod` on a patch sampler.

    Parameters
    ----------
    config : TrainConfig
        Resolved config (class names and network classes set).
    volumes : list of TrainingVolume
        Normalised training volumes.
    run_dir : path
        Output folder (created).
    norm_stats : NormStats or None
        Recorded in checkpoints (None: per-volume normalisation at predict time).
    callback : callable, optional
        Receives a :class:`TrainProgress` every ``config.log_every`` iterations.
    cancel : CancelToken, optional
        Checked every iteration; on cancel a checkpoint is written and the run returns.
    validation_volumes : list of TrainingVolume, optional
        Held-out labelled volumes scored every ``config.validation.every`` iterations
        (best weights kept in ``best.pt``, plateau stop after ``validation.patience``).
    diagnostic_volumes : list of TrainingVolume, optional
        With validation: training volumes labelled with the truth of their *unannotated*
        voxels (255 where annotated); each branch's Dice there (``pseudo_dice_a``/``_b``, the
        quality of the pseudo-labels the cross-branch terms learn from) is logged at each
        validation. Benchmarks only: it needs the full truth.
    """

    def __init__(
        self,
        config: TrainConfig,
        volumes: list[TrainingVolume],
        run_dir: str | os.PathLike,
        *,
        norm_stats: NormStats | None = None,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        validation_volumes: list[TrainingVolume] | None = None,
        diagnostic_volumes: list[TrainingVolume] | None = None,
    ):
        self.config = config.validate()
        self.volumes = volumes
        self.run_dir = Path(run_dir)
        self.norm_stats = norm_stats
        self.callback = callback
        self.cancel = cancel or CancelToken()
        self.iteration = 0
        self.history: list[dict] = []
        self._times: deque[float] = deque(maxlen=20)
        self._initialized = False
        self._distributed = False
        self.dist = distributed.DistContext()
        self.messages: list[str] = []
        dump = os.environ.get(DEBUG_DUMP_ENV)
        self._debug_dir = Path(dump) if dump else None
        self._debug: dict[str, Any] = {"batch_sums": []}
        #: Per-phase wall time of the iterations (off unless a planner or profiler enables it).
        self.timer = PhaseTimer()
        #: Per-term gradient norms of the current iteration, logged with its row.
        self._gradnorms: dict[str, float] = {}
        #: The wall-clock limit (``config.max_seconds``), started by :meth:`run_training`; on the
        #: loop's clock (this module's ``time``, looked up at each call so a test can replace it).
        self.deadline = Deadline(self.config.max_seconds, lambda: time.perf_counter())
        self.setup_validation(config, validation_volumes, diagnostic_volumes)

    # -- hooks ------------------------------------------------------------------------
    def initialize(self) -> None:
        """Process group (under torchrun), device, seeds, method, optimiser, scaler, sampler.

        Every rank seeds the network initialisation alike (DDP also broadcasts rank 0's
        weights), while the patch sampler and the augmentation get a stream per rank, so
        N ranks see N different batches; rank 0 draws exactly what a single process would.
        """
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        device = resolve_device(cfg.device)
        if device.type == "mps" and cfg.device == "auto" and distributed.launched_by_torchrun():
            device = torch.device("cpu")  # no multi-process backend on MPS
        self.dist, self.device = distributed.setup(device, explicit_index=":" in str(cfg.device))
        rank = self.dist.rank
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        random.seed(distributed.rank_seed(cfg.seed, rank))
        np.random.seed(distributed.rank_seed(cfg.seed, rank) % 2**32)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.aug_generator = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 1, rank))
        self.method: TrainingMethod = build_method(cfg, self.device, self.aug_generator)
        self.timer.device = self.device
        self.method.timer = self.timer
        if rank:
            torch.manual_seed(distributed.rank_seed(cfg.seed, rank))
        self.optimizer = build_optimizer(self.method.parameters(), cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.sampler = PatchSampler(
            self.volumes, cfg.patch_size, np.random.default_rng(distributed.rank_seed(cfg.seed, rank)),
            cfg.ignore_index, foreground_fraction=cfg.foreground_fraction,
        )
        if self.sampler.n_labelled_volumes == 0:
            raise EmptyDatasetError("no annotated voxel in the training set: label a few slices first")
        self.method.train()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._initialized = True

    def lr_at(self, iteration: int) -> float:
        """Poly schedule: ``lr * (1 - it / iterations) ** poly_power``."""
        cfg = self.config
        return cfg.lr * (1.0 - iteration / cfg.iterations) ** cfg.poly_power

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision on CUDA; a no-op context elsewhere."""
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def distribute(self) -> None:
        """Wrap the method's trainable networks in DDP (once, after any weights were loaded).

        Wrapping broadcasts rank 0's weights, so even a resumed or fine-tuned run starts
        identical on every rank.
        """
        if self.dist.enabled and not self._distributed:
            unused = not self.method.uses_every_parameter
            self.method.distribute(
                lambda module: distributed.wrap(module, self.dist, self.device, find_unused_parameters=unused)
            )
            self._distributed = True
        if self._debug_dir is not None and "initial_state" not in self._debug:
            self._debug["initial_state"] = _state_copy(self.method.model_for_checkpoint())

    def message(self, text: str) -> None:
        """Tell the user something: logged, kept in :attr:`messages`, sent to the callback."""
        _log.warning(text)
        self.messages.append(text)
        if self.callback is not None and self.dist.is_main:
            it = min(self.iteration, self.config.iterations - 1)
            self.callback(TrainProgress(self.iteration, self.config.iterations, {}, 0.0, float("nan"),
                                        self.lr_at(it), message=text))

    def _train_step_once(self, iteration: int) -> dict[str, float]:
        """Sample, forward (method), backward, optimiser step; returns the losses as floats."""
        cfg = self.config
        timer = self.timer
        with timer.phase("sample"):
            images, labels = self.sampler.sample_labelled(cfg.batch_labeled)
            unlabelled = None
            if self.method.uses_unlabelled and cfg.batch_unlabeled > 0:
                unlabelled = torch.from_numpy(self.sampler.sample_unlabelled(cfg.batch_unlabeled))
        if self._debug_dir is not None:
            self._debug["batch_sums"].append(float(images.sum()))
        lr = self.lr_at(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.method.training_step(
                torch.from_numpy(images), torch.from_numpy(labels), unlabelled, iteration
            )
        total = losses["loss"]
        if not torch.isfinite(total).item() and not self.use_amp:
            raise TrainingError(
                f"the loss became {total.item()} at iteration {iteration}; lower the learning rate "
                "or check the images (constant or extreme intensities)"
            )
        if self.gradnorms_due(iteration + 1):
            with timer.phase("gradnorm"):
                self._gradnorms = self.term_gradient_norms(losses, iteration)
        with timer.phase("backward"):
            self.scaler.scale(total).backward()
        with timer.phase("optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.method.after_optimizer_step(iteration)
        out = {k: float(v.detach().float().item()) for k, v in losses.items()}
        out["lr"] = lr
        return out

    def term_gradient_norms(self, losses: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
        """Measure what each loss term contributes to the update on this batch (see :mod:`.gradnorm`)."""
        weights = self.method.term_weights(iteration)
        scale = float(self.scaler.get_scale()) if self.use_amp else 1.0
        norms = term_gradient_norms(losses, weights, list(self.method.parameters()), scale)
        norms.update({f"gradweight_{t}": float(w) for t, w in weights.items() if t in losses})
        return norms

    def on_iteration_end(self, iteration: int, losses: dict[str, float], seconds: float) -> None:
        """Log, report progress and write a periodic checkpoint."""
        cfg = self.config
        self._times.append(seconds)
        done = iteration + 1
        its = len(self._times) / max(sum(self._times), 1e-9)
        if self.validation_due(done):
            started = time.perf_counter()
            validation = self.validate(done)
            self.deadline.validation_s = time.perf_counter() - started
        else:
            validation = {}
        gradnorms, self._gradnorms = self._gradnorms, {}
        last = self.is_final(done)
        if done % cfg.log_every == 0 or last or validation or gradnorms:
            lr = losses.pop("lr")
            losses = distributed.mean_over_ranks(losses, self.dist, self.device)  # every rank
            row = {"iteration": done, **losses, "lr": lr, "its_per_s": its, "time": time.time()}
            row.update({f"val_{k}": v for k, v in validation.items()})
            row.update(gradnorms)
            if self.stop_reason:
                row["stop_reason"] = self.stop_reason
            self.history.append(row)
            if self.dist.is_main:
                with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                if self.callback is not None:
                    self.callback(TrainProgress(done, cfg.iterations, dict(losses), its, (cfg.iterations - done) / its,
                                                lr, validation=validation))
        if self.checkpoint_due(done) and not last and self.dist.is_main:
            started = time.perf_counter()
            self.save_checkpoint(self.checkpoint_path(done))
            self._prune_checkpoints()
            self.deadline.save_s = time.perf_counter() - started

    def checkpoint_due(self, done: int) -> bool:
        """Return True when a periodic checkpoint falls on iteration count ``done``."""
        every = self.config.checkpoint_every
        return bool(every) and done % every == 0 and done < self.config.iterations

    def check_deadline(self, seconds: float) -> None:
        """After an iteration: stop here (``STOP_TIME_BUDGET``) when another one would pass the limit.

        Decided before :meth:`on_iteration_end`, so this iteration gets the final validation
        and a logged row. Every rank stops at the same iteration (their clocks differ).
        """
        if self.deadline.max_seconds is None or self.stop_reason:
            return
        done = self.iteration
        reached = self.deadline.reached(
            [*self._times, seconds], validates=self.validator is not None,
            validation_due=self.validation_due(done), checkpoint_due=self.checkpoint_due(done),
        )
        if distributed.any_rank(reached, self.dist, self.device):
            self.stop_reason = STOP_TIME_BUDGET

    def run_training(self) -> TrainResult:
        """Run the loop; return when done, stopped early or cancelled (a checkpoint is written either way).

        A run stops early on a validation plateau or at its wall-clock limit
        (``config.max_seconds``, counted from here: a resumed run gets it afresh). Either way
        it ends like a full run: validated, the best weights in ``model.pt``, the reason in
        the last ``metrics.jsonl`` row and in the result. Under torchrun every rank returns
        the same result once rank 0 has written it.
        """
        if not self._initialized:
            self.initialize()
        self.distribute()
        if self.dist.is_main:
            _write_json(self.run_dir / "config.json", self.config.to_dict())
        status, path = "completed", self.run_dir / "model.pt"
        limit = self.config.max_seconds
        if limit is not None and self.iteration and self.dist.is_main:
            self.message(f"resumed at iteration {self.iteration}: the run's time limit of "
                         f"{format_seconds(limit)} counts from now")
        self.deadline.start()
        while self.iteration < self.config.iterations:
            # one rank's Ctrl-C stops them all at the same iteration
            if distributed.any_rank(self.cancel.cancelled, self.dist, self.device):
                status, path = "cancelled", self.checkpoint_path(self.iteration)
                break
            start = time.perf_counter()
            losses = self.train_step(self.iteration)
            self.iteration += 1
            seconds = time.perf_counter() - start
            self.check_deadline(seconds)
            self.on_iteration_end(self.iteration - 1, losses, seconds)
            if self.stop_reason:
                if self.dist.is_main:
                    self.message(self._stop_message())
                break
        if self.dist.is_main:
            ckpt = self.checkpoint_dict()
            best = self.run_dir / "best.pt"
            if status == "completed" and self.best_iteration is not None and best.is_file():
                # the model the user gets is the best validated one (the schedule's state stays)
                ckpt["model_state"] = load_checkpoint(best)["model_state"]
                ckpt["best_iteration"] = self.best_iteration
                ckpt["best_score"] = self.best_score
            save_checkpoint(path, ckpt)
        self._debug_dump()
        distributed.barrier(self.dist)
        reason = self.stop_reason if status == "completed" else ""
        return TrainResult(path, self.iteration, status, list(self.history), self.best_iteration,
                           self.best_score, bool(reason), reason,
                           describe_stop(reason, self.iteration, self.config.iterations, limit))

    def _stop_message(self) -> str:
        """Return what the user is told when the run stops before its iteration count."""
        best = "" if self.best_iteration is None else f" (best {self.best_score:.4f} at {self.best_iteration})"
        if self.stop_reason == STOP_PLATEAU:
            return (f"validation Dice has not improved for {self.config.validation.patience} validations: "
                    f"stopping at iteration {self.iteration}{best}")
        return (f"time limit of {format_seconds(self.config.max_seconds or 0.0)} reached "
                f"({format_seconds(self.deadline.elapsed())} spent): stopping at iteration {self.iteration} "
                f"of {self.config.iterations}{best}")

    def close(self) -> None:
        """Leave the torchrun process group if this trainer formed it (no-op otherwise)."""
        distributed.cleanup(self.dist)

    def _debug_dump(self) -> None:
        if self._debug_dir is None:
            return
        self._debug_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "rank": self.dist.rank,
            "world_size": self.dist.world_size,
            "iteration": self.iteration,
            "model_state": _state_copy(self.method.model_for_checkpoint()),
            **self._debug,
        }
        torch.save(data, self._debug_dir / f"rank{self.dist.rank}.pt")


def _state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
