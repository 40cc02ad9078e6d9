"""Out of device memory: free it, halve the batch, then the patch, and go on.

A GPU run that dies on its first iteration because the patch was a little too large is the
commonest failure a user meets; the back-off turns it into a notice. Under torchrun the ranks
must stay in step, so there is no retry there: a clear error instead.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Any

import torch

from barl_core.errors import TrainingError
from barl_core.networks.unet import required_divisor
from barl_core.training.config import TrainConfig

__all__ = ["MIN_PATCH_SIDE", "OutOfMemoryBackoff", "is_out_of_memory", "smaller_setting"]

#: Out-of-memory retries never shrink a patch side below this many voxels.
MIN_PATCH_SIDE = 16


class OutOfMemoryBackoff:
    """Trainer mixin: :meth:`train_step` retries :meth:`_train_step_once` with less memory.

    Uses the trainer's ``config``, ``optimizer``, ``device``, ``dist``, ``method``,
    ``sampler`` and ``message``.
    """

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
                if not is_out_of_memory(exc):
                    raise
                detail = (str(exc).strip().splitlines() or ["out of memory"])[0][:200]
            # outside the except block: the traceback (and the graph it holds) is gone
            self._recover_from_out_of_memory(iteration, detail)

    def _recover_from_out_of_memory(self, iteration: int, detail: str) -> None:
        """Free memory and shrink batch or patch, or raise a clear :class:`TrainingError`."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        empty_device_cache(self.device)
        where = f"{self.device.type.upper()} memory"
        now = f"patch {tuple(cfg.patch_size)} and {self._batch_text(cfg)}"
        if self.dist.enabled:
            raise TrainingError(
                f"rank {self.dist.rank} ran out of {where} with {now}; relaunch with a smaller "
                f"--patch or --batch-labeled/--batch-unlabeled ({detail})"
            )
        smaller = smaller_setting(cfg, self.method.uses_unlabelled)
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


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, or the RuntimeError MPS (and older CUDA) raise."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def empty_device_cache(device: torch.device) -> None:
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        elif device.type == "mps":
            torch.mps.empty_cache()
    except RuntimeError:  # pragma: no cover - a broken driver must not hide the OOM
        pass


def smaller_setting(cfg: TrainConfig, uses_unlabelled: bool) -> dict[str, Any] | None:
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
