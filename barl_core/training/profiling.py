"""Per-phase wall-clock timing of training iterations (sampling, views, forward, losses, ...).

The trainer and the methods wrap each part of an iteration in ``timer.phase(name)``. A
disabled :class:`PhaseTimer` (the default) costs one attribute check per phase; an enabled
one adds up the seconds per phase name, synchronising CUDA before each clock read so that
asynchronous kernels are charged to the phase that launched them. The planner
(:mod:`~barl_core.training.planner`) and ``benchmarks/iteration_profile.py`` read the totals.

Example
-------
>>> timer = PhaseTimer(enabled=True)
>>> with timer.phase("sample"):
...     pass
>>> sorted(timer.totals)
['sample']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch

__all__ = ["PhaseTimer", "PHASES"]

#: Phase names the engine uses, in the order of an iteration (loss terms are ``loss:<term>``).
PHASES = ("sample", "views", "forward", "loss", "backward", "optimizer")


class PhaseTimer:
    """Accumulates wall seconds per phase name.

    Parameters
    ----------
    enabled : bool
        False: :meth:`phase` is a no-op (the default during training).
    device : torch.device or str, optional
        When CUDA, the device is synchronised at each phase boundary.
    clock : callable, optional
        Seconds source: ``time.perf_counter`` (wall, default) or ``time.process_time``
        (CPU seconds of this process: on a machine shared with other jobs, what the
        iteration costs rather than how long it waited; single-threaded runs only).
    """

    def __init__(
        self,
        enabled: bool = False,
        device: torch.device | str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.enabled = enabled
        self.clock = clock
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the enclosed block's wall time to ``name`` (phases must not nest)."""
        if not self.enabled:
            yield
            return
        self._sync()
        start = self.clock()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] = self.totals.get(name, 0.0) + self.clock() - start
            self.counts[name] = self.counts.get(name, 0) + 1

    def reset(self) -> None:
        """Forget all totals."""
        self.totals.clear()
        self.counts.clear()

    def mean_per(self, n: int) -> dict[str, float]:
        """Seconds per phase divided by ``n`` (e.g. per iteration)."""
        return {k: v / max(n, 1) for k, v in self.totals.items()}
