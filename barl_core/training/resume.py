"""Checkpoints of a running trainer: write, prune, resume, fine-tune from, find the latest.

The file format itself lives in :mod:`~barl_core.training.checkpoint`; this module is what a
*trainer* puts into it (weights, optimiser, scaler, every random stream, the metric log) and
takes back, so that a resumed run draws exactly the patches the uninterrupted one would have.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from barl_core.errors import CheckpointError
from barl_core.training import distributed
from barl_core.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from barl_core.training.config import default_class_names

__all__ = ["CheckpointHooks", "HISTORY_IN_CHECKPOINT", "latest_checkpoint"]

#: Checkpoints keep at most this many metric rows (the full log is metrics.jsonl).
HISTORY_IN_CHECKPOINT = 2000


class CheckpointHooks:
    """Trainer mixin: the checkpoint hooks of :class:`~barl_core.training.trainer.Trainer`.

    Uses the trainer's ``config``, ``method``, ``optimizer``, ``scaler``, ``use_amp``,
    ``sampler``, ``aug_generator``, ``norm_stats``, ``dist``, ``run_dir``, ``iteration`` and
    ``history``; resuming also restores the plateau bookkeeping (``best_score``,
    ``best_iteration``, ``_stale``).
    """

    def checkpoint_path(self, iteration: int) -> Path:
        """Return the path of the periodic checkpoint at ``iteration``."""
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
            "history": self.history[-HISTORY_IN_CHECKPOINT:],
            "warm_start": bool(self.method.warm_start),
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
        self.method.warm_start = bool(ckpt.get("warm_start", False))  # a resumed fine-tune stays one
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
        """Fine-tuning: the checkpoint's weights, a fresh optimiser and schedule, no loss ramp-up."""
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, self.config.network, self.config.class_names)
        self._load_weights(ckpt)
        self.method.warm_start = True

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


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """Return the most advanced checkpoint of a run (final ``model.pt`` included), or None."""
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
