"""The training loop: device, precision, schedule, callbacks, cancellation, checkpoints.

The :class:`Trainer` knows nothing of BARL: a method (:mod:`~barl_core.training.methods`) turns a
batch into losses, the trainer does everything around it. Its :meth:`Trainer.run_training`
reads as the list of hooks it calls (nnU-Net's shape); a variant overrides a hook.

A run directory holds::

    RUN_DIR/config.json                   the resolved TrainConfig (classes included)
    RUN_DIR/metrics.jsonl                 one JSON line per logged iteration
    RUN_DIR/checkpoints/ckpt_000050.pt    periodic checkpoints (the last few kept)
    RUN_DIR/model.pt                      the final model

:func:`train` is the one-call entry point the CLI, the GUI's child-process job runner and the
demo use.

Under ``torchrun`` (see :mod:`~barl_core.training.distributed` and ``docs/multi_gpu.md``) every rank
runs this same loop on its own patches, DistributedDataParallel averages the gradients, and
only rank 0 writes the run directory. Out of GPU memory, a single-process run halves the
batch, then the patch, and goes on (saying so); below the floor it stops with a
:class:`~barl_core.errors.TrainingError`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from barl_core.data.dataset import Case, load_dataset
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.normalization import NormStats, compute_norm_stats
from barl_core.data.resample import resample_volume
from barl_core.data.sampler import PatchSampler, TrainingVolume, training_volumes
from barl_core.errors import BarlError, CheckpointError, EmptyDatasetError, TrainingError
from barl_core.io.volume import atomic_path
from barl_core.networks.unet import required_divisor
from barl_core.runtime.cancel import CancelToken
from barl_core.runtime.device import resolve_device
from barl_core.training import distributed
from barl_core.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from barl_core.training.config import TrainConfig, default_class_names
from barl_core.training.methods import TrainingMethod, build_method
from barl_core.training.profiling import PhaseTimer
from barl_core.training.validator import Validator, split_validation

__all__ = [
    "TrainProgress",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "prepare_training_data",
    "latest_checkpoint",
    "dataset_class_names",
    "train",
]

ProgressCallback = Callable[["TrainProgress"], None]
#: Checkpoints keep at most this many metric rows (the full log is metrics.jsonl).
_HISTORY_IN_CHECKPOINT = 2000
#: Out-of-memory retries never shrink a patch side below this many voxels.
MIN_PATCH_SIDE = 16
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
        True when the validation Dice plateaued (``validation.patience``) before the budget.
    """

    model_path: Path
    iterations_done: int
    status: str
    history: list[dict] = field(default_factory=list)
    best_iteration: int | None = None
    best_score: float | None = None
    stopped_early: bool = False


# --------------------------------------------------------------------------- data preparation
def build_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer``; the trainer sets its lr every step.

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


def prepare_training_data(
    cases: Sequence[Case], config: TrainConfig
) -> tuple[list[TrainingVolume], NormStats | None, tuple[str, ...]]:
    """Resample to the working spacing, normalise and find the class set.

    Parameters
    ----------
    cases : list of Case
        From :func:`~barl_core.data.dataset.load_dataset`.
    config : TrainConfig
        ``target_spacing``, ``normalization``, ``fixed_normalization``, ``class_names``,
        ``ignore_index``.

    Returns
    -------
    volumes : list of TrainingVolume
    stats : NormStats or None
        Dataset-wide statistics with ``fixed_normalization``; None for per-volume.
    class_names : tuple of str
        ``config.class_names``, or inferred ``("background", "class_1", ...)`` from the
        largest label value.

    Raises
    ------
    EmptyDatasetError
        No case, or not a single annotated voxel in any label map.
    TrainingError
        Labels hold values beyond the named classes.
    """
    if not cases:
        raise EmptyDatasetError("the training set holds no case")
    ignore = config.ignore_index
    work: list[Case] = []
    max_label = -1
    present: set[int] = set()
    for case in cases:
        case = _working_grid(case, config)
        labels = case.labels
        if labels is not None:
            annotated = labels[labels != ignore]
            if annotated.size:
                max_label = max(max_label, int(annotated.max()))
                if config.class_names is None:
                    present.update(int(v) for v in np.unique(annotated))
        work.append(case)
    if max_label < 0:
        raise EmptyDatasetError(
            f"no annotated voxel in any of the {len(cases)} label map(s) (every voxel is the ignore "
            f"value {ignore} or there are no labels): label a few slices first"
        )
    if config.class_names is not None:
        names = tuple(config.class_names)
        if max_label >= len(names):
            raise TrainingError(
                f"labels hold class {max_label} but only {len(names)} classes are named ({', '.join(names)})"
            )
    else:
        missing = max_label + 1 - len(present)
        if missing > max(2, (max_label + 1) // 2):
            # e.g. values {0, 1, 254}: a stray value, not 255 classes (issue 14)
            raise TrainingError(
                f"labels hold value {max_label}, which would make a {max_label + 1}-class network, "
                f"but only {len(present)} values occur ({', '.join(map(str, sorted(present)[:8]))}); "
                f"name the classes with --classes, or fix the label maps (unannotated voxels are {ignore})"
            )
        names = default_class_names(max(2, max_label + 1))
    stats = None
    if config.fixed_normalization:
        sample = np.concatenate([c.image.array.reshape(-1)[:: max(1, c.image.array.size // 2_000_000)] for c in work])
        stats = compute_norm_stats(sample, config.normalization)
    volumes = training_volumes(work, config.normalization, stats)
    return volumes, stats, names


def _working_grid(case: Case, config: TrainConfig) -> Case:
    """The case resampled to ``config.target_spacing`` (unchanged without one)."""
    if config.target_spacing is None:
        return case
    image = resample_volume(case.image, config.target_spacing)
    labels = case.labels
    if labels is not None:
        labels = resample_volume(
            case.image.with_array(labels), config.target_spacing, is_label=True, ignore_index=config.ignore_index
        ).array
    return replace(case, image=image, labels=labels)


def validation_volumes(
    cases: Sequence[Case], config: TrainConfig, stats: NormStats | None
) -> list[TrainingVolume]:
    """Validation cases on the training grid, normalised as the training volumes were."""
    return training_volumes([_working_grid(c, config) for c in cases], config.normalization, stats)


# --------------------------------------------------------------------------- the trainer
class Trainer:
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
        self._stop_early = False

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

    def train_step(self, iteration: int) -> dict[str, float]:
        """One optimiser step; out of memory, retry with a smaller batch, then patch.

        Raises
        ------
        TrainingError
            Out of memory at the smallest batch and patch, under torchrun (ranks must stay
            in step, so there is no retry), or a non-finite loss.
        """
        while True:
            try:
                return self._train_step_once(iteration)
            except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
                if not _is_out_of_memory(exc):
                    raise
                detail = (str(exc).strip().splitlines() or ["out of memory"])[0][:200]
            # outside the except block: the traceback (and the graph it holds) is gone
            self._recover_from_out_of_memory(iteration, detail)

    def _recover_from_out_of_memory(self, iteration: int, detail: str) -> None:
        """Free memory and shrink batch or patch, or raise a clear :class:`TrainingError`."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        _empty_device_cache(self.device)
        where = f"{self.device.type.upper()} memory"
        now = f"patch {tuple(cfg.patch_size)} and {self._batch_text(cfg)}"
        if self.dist.enabled:
            raise TrainingError(
                f"rank {self.dist.rank} ran out of {where} with {now}; relaunch with a smaller "
                f"--patch or --batch-labeled/--batch-unlabeled ({detail})"
            )
        smaller = _smaller_setting(cfg, self.method.uses_unlabelled)
        if smaller is None:
            raise TrainingError(
                f"out of {where} even with {now}: use a smaller network (base_channels), "
                f"--device cpu or a GPU with more memory ({detail})"
            )
        self.config = replace(cfg, **smaller)
        self.sampler.patch_size = tuple(int(p) for p in self.config.patch_size)  # type: ignore[assignment]
        c = self.config
        self.message(
            f"out of {where} at iteration {iteration + 1}; retrying with patch {tuple(c.patch_size)} "
            f"and {self._batch_text(c)}"
        )

    def _batch_text(self, cfg: TrainConfig) -> str:
        if self.method.uses_unlabelled:
            return f"batches {cfg.batch_labeled}+{cfg.batch_unlabeled} (labelled+unlabelled)"
        return f"batch {cfg.batch_labeled}"

    def message(self, text: str) -> None:
        """A notice for the user: logged, kept in :attr:`messages`, sent to the callback."""
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
        with timer.phase("backward"):
            self.scaler.scale(total).backward()
        with timer.phase("optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.method.after_optimizer_step(iteration)
        out = {k: float(v.detach().float().item()) for k, v in losses.items()}
        out["lr"] = lr
        return out

    def on_iteration_end(self, iteration: int, losses: dict[str, float], seconds: float) -> None:
        """Log, report progress and write a periodic checkpoint."""
        cfg = self.config
        self._times.append(seconds)
        done = iteration + 1
        its = len(self._times) / max(sum(self._times), 1e-9)
        validation = self.validate(done)
        if done % cfg.log_every == 0 or done == cfg.iterations or validation:
            lr = losses.pop("lr")
            losses = distributed.mean_over_ranks(losses, self.dist, self.device)  # every rank
            row = {"iteration": done, **losses, "lr": lr, "its_per_s": its, "time": time.time()}
            row.update({f"val_{k}": v for k, v in validation.items()})
            self.history.append(row)
            if self.dist.is_main:
                with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                if self.callback is not None:
                    self.callback(TrainProgress(done, cfg.iterations, dict(losses), its, (cfg.iterations - done) / its,
                                                lr, validation=validation))
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.iterations and self.dist.is_main:
            self.save_checkpoint(self.checkpoint_path(done))
            self._prune_checkpoints()

    def validate(self, done: int) -> dict[str, float]:
        """Score the held-out volumes when due; keep the best weights; decide a plateau stop.

        Returns the scores (empty when no validation was due) with ``best`` and
        ``best_iteration`` added. Rank 0 scores; every rank learns whether to stop.
        """
        vcfg = self.config.validation
        if self.validator is None or not (done % vcfg.every == 0 or done == self.config.iterations):
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
        self._stop_early = distributed.any_rank(stop, self.dist, self.device)
        return scores

    def pseudo_label_scores(self) -> dict[str, float]:
        """Mean foreground Dice of each branch on the diagnostic volumes' unannotated voxels."""
        model = self.method.model_for_checkpoint()
        branches = {"a": model.branch_a, "b": model.branch_b} if hasattr(model, "branch_a") else {"a": model}
        return {f"pseudo_dice_{k}": self.diagnostic.score(m, self.device)["dice"]  # type: ignore[union-attr]
                for k, m in branches.items()}

    def checkpoint_path(self, iteration: int) -> Path:
        return self.run_dir / "checkpoints" / f"ckpt_{iteration:06d}.pt"

    def _prune_checkpoints(self) -> None:
        ckpts = sorted((self.run_dir / "checkpoints").glob("ckpt_*.pt"))
        for old in ckpts[: -self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def checkpoint_dict(self) -> dict[str, Any]:
        """Everything to predict with, resume or reproduce (architecture doc's format)."""
        cfg = self.config
        rng_state = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_global_state(),
            "python": _python_state(),
            "augment": self.aug_generator.get_state(),
            "sampler": self.sampler.rng.bit_generator.state,
        }
        if torch.cuda.is_available():
            rng_state["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "method": cfg.method,
            "n_branches": self.method.n_branches,
            "model_state": self.method.model_for_checkpoint().state_dict(),
            "network": asdict(cfg.network),
            "class_names": list(cfg.class_names or default_class_names(cfg.network.num_classes)),
            "ignore_index": cfg.ignore_index,
            "normalization": self.norm_stats.to_dict() if self.norm_stats else None,
            "norm_config": asdict(cfg.normalization),
            "target_spacing": list(cfg.target_spacing) if cfg.target_spacing else None,
            "patch_size": list(cfg.patch_size),
            "iteration": self.iteration,
            "total_iterations": cfg.iterations,
            "config": cfg.to_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scaler_state": self.scaler.state_dict() if self.use_amp else None,
            "rng_state": rng_state,
            "history": self.history[-_HISTORY_IN_CHECKPOINT:],
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the current state atomically."""
        return save_checkpoint(path, self.checkpoint_dict())

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Resume: weights, optimiser, scaler, RNG state, iteration and history."""
        ckpt = load_checkpoint(path)
        self._check_same_run(ckpt)
        self._load_weights(ckpt)
        if ckpt.get("optimizer_state"):
            self.optimizer.load_state_dict(ckpt["optimizer_state"])
        if self.use_amp and ckpt.get("scaler_state"):
            self.scaler.load_state_dict(ckpt["scaler_state"])
        rng = ckpt.get("rng_state") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "numpy" in rng:
            _set_numpy_global_state(rng["numpy"])
        if "python" in rng:
            random.setstate(_to_tuple(rng["python"]))
        if "augment" in rng:
            self.aug_generator.set_state(rng["augment"])
        if "sampler" in rng:
            self.sampler.rng.bit_generator.state = rng["sampler"]
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.iteration = int(ckpt["iteration"])
        self.history = list(ckpt.get("history") or [])
        scored = [r for r in self.history if "val_dice" in r]
        if scored:  # resume the plateau bookkeeping where it stopped
            best = max(scored, key=lambda r: r["val_dice"])
            self.best_score, self.best_iteration = float(best["val_dice"]), int(best["iteration"])
            self._stale = sum(1 for r in scored if r["iteration"] > self.best_iteration)
        if self.dist.rank:  # the file holds rank 0's streams: give this rank its own again
            seed = self.config.seed
            self.sampler.rng = np.random.default_rng(distributed.rank_seed(seed, self.dist.rank, self.iteration))
            self.aug_generator.manual_seed(distributed.rank_seed(seed + 1, self.dist.rank, self.iteration))

    def init_from(self, path: str | os.PathLike) -> None:
        """Fine-tuning: the checkpoint's weights, a fresh optimiser and schedule."""
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, self.config.network, self.config.class_names)
        self._load_weights(ckpt)

    def _check_same_run(self, ckpt: dict) -> None:
        check_compatible(ckpt, self.config.network, self.config.class_names)
        if ckpt["method"] != self.config.method:
            raise CheckpointError(
                f"cannot resume: the checkpoint was trained with method {ckpt['method']!r}, "
                f"this run uses {self.config.method!r}"
            )

    def _load_weights(self, ckpt: dict) -> None:
        model = self.method.model_for_checkpoint()
        if ckpt["n_branches"] != self.method.n_branches:
            raise CheckpointError(
                f"the checkpoint has {ckpt['n_branches']} branch(es) ({ckpt['method']}); method "
                f"{self.config.method!r} needs {self.method.n_branches}"
            )
        try:
            model.load_state_dict(ckpt["model_state"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit this network: {str(exc).splitlines()[0]}") from None

    def run_training(self) -> TrainResult:
        """The loop; returns when done or cancelled (a checkpoint is written either way).

        Under torchrun every rank returns the same result once rank 0 has written it.
        """
        if not self._initialized:
            self.initialize()
        self.distribute()
        if self.dist.is_main:
            _write_json(self.run_dir / "config.json", self.config.to_dict())
        status, path = "completed", self.run_dir / "model.pt"
        while self.iteration < self.config.iterations:
            # one rank's Ctrl-C stops them all at the same iteration
            if distributed.any_rank(self.cancel.cancelled, self.dist, self.device):
                status, path = "cancelled", self.checkpoint_path(self.iteration)
                break
            start = time.perf_counter()
            losses = self.train_step(self.iteration)
            self.iteration += 1
            self.on_iteration_end(self.iteration - 1, losses, time.perf_counter() - start)
            if self._stop_early:
                if self.dist.is_main:
                    self.message(
                        f"validation Dice has not improved for {self.config.validation.patience} validations: "
                        f"stopping at iteration {self.iteration} (best {self.best_score:.4f} at {self.best_iteration})"
                    )
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
        return TrainResult(path, self.iteration, status, list(self.history), self.best_iteration,
                           self.best_score, self._stop_early)

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


# --------------------------------------------------------------------------- helpers
def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, or the RuntimeError MPS (and older CUDA) raise."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _empty_device_cache(device: torch.device) -> None:
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        elif device.type == "mps":
            torch.mps.empty_cache()
    except RuntimeError:  # pragma: no cover - a broken driver must not hide the OOM
        pass


def _smaller_setting(cfg: TrainConfig, uses_unlabelled: bool) -> dict[str, Any] | None:
    """Halved batches if they can shrink, else a halved patch (>= the floor), else None."""
    bl, bu = cfg.batch_labeled, cfg.batch_unlabeled
    new_bl = max(1, bl // 2)
    new_bu = max(1, bu // 2) if (uses_unlabelled and bu > 0) else bu
    if (new_bl, new_bu) != (bl, bu):
        return {"batch_labeled": new_bl, "batch_unlabeled": new_bu}
    div = required_divisor(cfg.network)
    floor = max(div, MIN_PATCH_SIDE)
    patch = tuple(int(p) for p in cfg.patch_size)
    smaller = tuple(p if p <= floor else max(floor, (p // 2) // div * div) for p in patch)
    if smaller != patch:
        return {"patch_size": smaller}
    return None


def _state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _numpy_global_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_global_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


def _python_state() -> tuple:
    return random.getstate()


def _to_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_to_tuple(v) for v in value)
    return value


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The most advanced checkpoint of a run (final ``model.pt`` included), or None."""
    run = Path(run_dir)
    candidates = sorted((run / "checkpoints").glob("ckpt_*.pt"))
    best: tuple[int, Path] | None = None
    for p in candidates:
        try:
            it = int(p.stem.split("_")[-1])
        except ValueError:
            continue
        if best is None or it > best[0]:
            best = (it, p)
    final = run / "model.pt"
    if final.is_file():
        it = int(load_checkpoint(final).get("iteration", 0))
        if best is None or it >= best[0]:
            best = (it, final)
    return best[1] if best else None


def dataset_class_names(images_dir: str | os.PathLike, ignore_index: int = IGNORE_INDEX) -> tuple[str, ...] | None:
    """Class names from an nnU-Net/MSD ``dataset.json`` beside the images, if any.

    Looks in ``images_dir`` and its parent for ``{"labels": {"background": 0, ...}}``;
    returns None when absent, unreadable, or not the classes ``0..K-1``.
    """
    folder = Path(images_dir)
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if not candidate.is_file():
            continue
        try:
            labels = json.loads(candidate.read_text(encoding="utf-8")).get("labels", {})
            by_value = {int(v): str(k) for k, v in labels.items() if int(v) != ignore_index}
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        if len(by_value) >= 2 and sorted(by_value) == list(range(len(by_value))):
            return tuple(by_value[i] for i in range(len(by_value)))
        return None
    return None


def train(
    config: TrainConfig,
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    init_from: str | os.PathLike | None = None,
    callback: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    validation_cases: Sequence[Case] | None = None,
    diagnostic_cases: Sequence[Case] | None = None,
    planner: Callable[[TrainConfig, list[TrainingVolume]], TrainConfig] | None = None,
) -> TrainResult:
    """Train a model on an MSD-style folder; the one call behind CLI, GUI jobs and demo.

    Parameters
    ----------
    config : TrainConfig
    images_dir, labels_dir : path
        Images (``imagesTr``) and sparse labels (``labelsTr``; 255 = not annotated).
        ``labels_dir`` None lets the loader find the MSD sibling folder.
    out_dir : path
        The run directory.
    resume : bool
        Continue from the latest checkpoint in ``out_dir`` with its saved config (the
        given config's ``device`` and ``num_threads`` still apply); iteration count,
        optimiser, scaler and RNG state continue.
    init_from : path, optional
        Fine-tune: start from this checkpoint's weights (architecture and classes must
        match; its class names are adopted when the config names none) with a fresh
        schedule of ``config.iterations``. Otherwise, unnamed classes come from a
        ``dataset.json`` beside the images, else from the largest label value.
    callback : callable, optional
        Receives :class:`TrainProgress`.
    cancel : CancelToken, optional
    validation_cases : list of Case, optional
        Held-out labelled cases to validate on (with ``config.validation.every``); without
        them a fixed share of the labelled cases is held out (:func:`~barl_core.training.validator.split_validation`).
    diagnostic_cases : list of Case, optional
        Training cases labelled with the truth of their unannotated voxels (255 where
        annotated): pseudo-label quality per branch, logged at each validation.
    planner : callable, optional
        ``planner(config, training_volumes) -> config``, called once the data is loaded
        (e.g. :func:`barl_core.training.planner.make_planner`: fingerprint, timing, time budget).

    Returns
    -------
    TrainResult

    Raises
    ------
    EmptyDatasetError, TrainingError, CheckpointError, InputFileError, ...
        Every user error as a :class:`~barl_core.errors.BarlError`.
    """
    if resume and init_from is not None:
        raise TrainingError("use either resume (continue a run) or init_from (fine-tune), not both")
    run_dir = Path(out_dir)
    resume_from: Path | None = None
    if resume:
        resume_from = latest_checkpoint(run_dir)
        if resume_from is None:
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoint in this run folder)")
        saved = TrainConfig.from_dict(load_checkpoint(resume_from)["config"])
        config = replace(saved, device=config.device, num_threads=config.num_threads)
    elif init_from is not None and config.class_names is None:
        ckpt = load_checkpoint(init_from)
        config = config.with_classes(ckpt["class_names"])
    elif config.class_names is None:
        names = dataset_class_names(images_dir, config.ignore_index)
        if names is not None:
            config = config.with_classes(names)
    config.validate()
    num_classes = len(config.class_names) if config.class_names else None
    cases = load_dataset(images_dir, labels_dir, ignore_index=config.ignore_index, num_classes=num_classes)
    volumes, stats, names = prepare_training_data(cases, config)
    config = config.with_classes(names).validate()
    if planner is not None:
        config = planner(config, volumes)
    held_out: list[TrainingVolume] = []
    if config.validation.every:
        if validation_cases is not None:
            held_out = validation_volumes(validation_cases, config, stats)
        else:
            volumes, held_out = split_validation(volumes, config.validation, config.ignore_index)
        if not held_out:
            _log.warning("validation is off: fewer than %d labelled cases to hold some out",
                         config.validation.min_labelled_cases)
    diagnostics = validation_volumes(diagnostic_cases, config, stats) if diagnostic_cases and held_out else None
    trainer = Trainer(config, volumes, run_dir, norm_stats=stats, callback=callback, cancel=cancel,
                      validation_volumes=held_out, diagnostic_volumes=diagnostics)
    try:
        trainer.initialize()
        if resume_from is not None:
            trainer.load_checkpoint(resume_from)
        elif init_from is not None:
            trainer.init_from(init_from)
        return trainer.run_training()
    except BarlError:
        raise
    except (ValueError, RuntimeError) as exc:
        if _is_out_of_memory(exc):
            raise TrainingError(f"out of memory: {str(exc).splitlines()[0]}; use a smaller patch or batch") from None
        raise
    finally:
        trainer.close()
