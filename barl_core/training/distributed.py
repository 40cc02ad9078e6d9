"""Multi-GPU and multi-node training: the process group around DistributedDataParallel.

``torchrun --nproc_per_node=N -m barl_core train ...`` starts N copies of the ``barl``
command and tells each who it is through the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). This module turns that environment into
a :class:`DistContext` (process group, this rank's device) and offers the few collectives
the :class:`~barl_core.training.trainer.Trainer` needs. Without torchrun every function is a cheap
no-op, so the single-process path stays exactly what it was.

Why only these pieces: gradient averaging itself is DistributedDataParallel's job (the
methods run their trainable networks through :func:`wrap`); the trainer only has to agree
across ranks on *when to stop* (cancellation) and *what to report* (mean losses).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from barl_core.errors import TrainingError

__all__ = [
    "DistContext",
    "TORCHRUN_VARIABLES",
    "launched_by_torchrun",
    "is_main_process",
    "setup",
    "cleanup",
    "wrap",
    "rank_seed",
    "any_rank",
    "mean_over_ranks",
    "barrier",
]

#: What torchrun sets for every worker; all present means "run distributed".
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: How long a rank waits for the others in a collective before failing (a dead peer).
_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistContext:
    """Who this process is in a (possibly one-process) training run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this machine.
    backend : {"nccl", "gloo"} or None
        None: single process, nothing is distributed.
    owns_group : bool
        True when :func:`setup` created the process group (and :func:`cleanup` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """Return True in a torchrun process group."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, config and metrics, and prints progress."""
        return self.rank == 0


def launched_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """Return True when the torchrun variables are all set (also for ``--nproc_per_node=1``)."""
    env = os.environ if env is None else env
    return all(env.get(name) for name in TORCHRUN_VARIABLES)


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or any process outside one (what prints the summary)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0 if launched_by_torchrun() else True


def setup(
    device: torch.device, *, explicit_index: bool = False
) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group (if launched by torchrun) and pick this rank's device.

    Parameters
    ----------
    device : torch.device
        The device the config resolved to (``cuda``, ``cpu``, ``mps``).
    explicit_index : bool
        The user named ``cuda:N``; under torchrun each rank takes GPU ``LOCAL_RANK``
        instead, so an explicit index is refused rather than silently ignored.

    Returns
    -------
    DistContext, torch.device
        On CUDA the device is ``cuda:LOCAL_RANK`` (and made current); the backend is NCCL
        on CUDA and gloo on CPU.

    Raises
    ------
    TrainingError
        Apple MPS (no multi-process backend), a GPU index, more local ranks than GPUs,
        or a process group that cannot be formed.
    """
    if not launched_by_torchrun():
        return DistContext(), device
    env = os.environ
    try:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    except ValueError:
        raise TrainingError(
            "torchrun variables RANK/WORLD_SIZE/LOCAL_RANK are not integers"
        ) from None
    if device.type == "mps":
        raise TrainingError(
            "multi-process training (torchrun) works on CUDA GPUs or on CPU, not on Apple MPS; "
            "run without torchrun or with --device cpu"
        )
    if device.type == "cuda":
        if explicit_index:
            raise TrainingError(
                f"under torchrun every process uses the GPU of its LOCAL_RANK; use --device cuda "
                f"(or auto), not {device}"
            )
        if local >= torch.cuda.device_count():
            raise TrainingError(
                f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPU(s): "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if dist.is_initialized():  # a user script formed the group already: use it, leave it
        return DistContext(
            dist.get_rank(), dist.get_world_size(), local, dist.get_backend(), False
        ), device
    try:
        dist.init_process_group(backend=backend, init_method="env://", timeout=_TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"cannot join the torchrun process group ({backend}, rank {rank}/{world}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return DistContext(rank, world, local, backend, True), device


def cleanup(ctx: DistContext | None) -> None:
    """Destroy the process group if :func:`setup` created it (safe to call twice)."""
    if ctx is not None and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(
    module: nn.Module,
    ctx: DistContext,
    device: torch.device,
    *,
    find_unused_parameters: bool = True,
) -> nn.Module:
    """``DistributedDataParallel(module)``: rank 0's weights are broadcast, gradients averaged.

    ``find_unused_parameters`` must be on when some parameters take no part in the loss
    (the projection head of a method that asks no features: supervised, CPS, Mean
    Teacher, BARL without its representation terms); it costs a graph traversal per step.
    """
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        module,
        device_ids=ids,
        output_device=ids[0] if ids else None,
        find_unused_parameters=find_unused_parameters,
    )


def rank_seed(seed: int, rank: int, *extra: int) -> int:
    """Rank 0 keeps ``seed`` (single-process runs reproduce); other ranks get their own stream."""
    if rank == 0 and not extra:
        return int(seed)
    return int(
        np.random.SeedSequence([int(seed), int(rank), *map(int, extra)]).generate_state(1)[0]
    )


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """Return True on every rank if ``flag`` is true on any (a Ctrl-C or cancel seen by one rank)."""
    if not ctx.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(
    values: Mapping[str, float], ctx: DistContext, device: torch.device
) -> dict[str, float]:
    """Average scalar metrics over the ranks (every rank must pass the same keys)."""
    if not ctx.enabled or not values:
        return dict(values)
    keys = list(values)  # same method on every rank: same keys in the same order
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= ctx.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. until rank 0 has written the final model)."""
    if ctx.enabled:
        dist.barrier()
