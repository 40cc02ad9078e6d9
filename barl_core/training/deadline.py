"""A run's wall-clock limit: stop in time for a final validation and save, however slow it gets.

The planner (:mod:`~barl_core.training.planner`) sizes a run to a time budget from a few
iterations it times *before* training. That holds only while the machine stays as fast: on a
laptop shared with other jobs a run planned for 2 minutes ran at 14 s per iteration once the
other jobs took the cores back (docs/benchmarks.md). So the budget is also a *deadline*
(``TrainConfig.max_seconds``) that the trainer checks after every iteration, with what it has
measured so far during the run: the iterations (the slower of the last one and the recent
mean, so a slow-down counts at once), the validations and the checkpoint writes.

The clock starts when the trainer's loop starts, so a resumed run gets the limit afresh from
the resume (the trainer says so), rather than inheriting a deadline already spent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["STOP_PLATEAU", "STOP_TIME_BUDGET", "Deadline", "describe_stop", "format_seconds", "stop_words"]

#: ``TrainResult.stop_reason`` / ``metrics.jsonl``'s ``stop_reason``: validation Dice plateaued.
STOP_PLATEAU = "plateau"
#: ... the wall-clock limit (``TrainConfig.max_seconds``) would have been passed.
STOP_TIME_BUDGET = "time budget"


def format_seconds(seconds: float) -> str:
    """``45 s``, ``2.0 min``, ``1.5 h``: a limit in the unit a user chose it in."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Deadline:
    """Decides, after each iteration, whether one more still fits the wall-clock limit.

    Parameters
    ----------
    max_seconds : float or None
        The limit, counted from :meth:`start`; None never stops a run.
    clock : callable
        Monotonic seconds (the trainer's ``time.perf_counter``; tests inject a fake one).

    Notes
    -----
    The run continues past iteration *i* only when, after what is already spent, there is
    room for what continuing costs at the rates measured so far: the validation and checkpoint
    due right now (if any), one more iteration, and the final validation and save that every
    stop needs. Validation and save times are the last measured ones (0 before the first,
    which the planner's 15% reserve covers).
    """

    def __init__(self, max_seconds: float | None, clock: Callable[[], float]):
        self.max_seconds = max_seconds
        self.clock = clock
        self.started: float | None = None
        #: Seconds of the last validation (best checkpoint included) and checkpoint write.
        self.validation_s = 0.0
        self.save_s = 0.0

    def start(self) -> None:
        """Start counting (the trainer's loop begins; a resumed run starts afresh)."""
        self.started = self.clock()

    def elapsed(self) -> float:
        """Return the seconds since :meth:`start` (0 before it)."""
        return 0.0 if self.started is None else self.clock() - self.started

    def final_reserve(self, validates: bool) -> float:
        """Return the seconds a stop still needs: the final validation (if any) and the save."""
        return (self.validation_s if validates else 0.0) + self.save_s

    def reached(
        self, iteration_seconds: Sequence[float], *, validates: bool, validation_due: bool, checkpoint_due: bool
    ) -> bool:
        """Whether the run must stop after the iteration just done.

        Parameters
        ----------
        iteration_seconds : sequence of float
            Recent iteration times, the one just done last.
        validates : bool
            The run validates (the final stop then validates once more).
        validation_due, checkpoint_due : bool
            A regular validation / periodic checkpoint is due after this iteration if the run
            continues.
        """
        if self.max_seconds is None or not iteration_seconds:
            return False
        mean = sum(iteration_seconds) / len(iteration_seconds)
        next_iteration = max(iteration_seconds[-1], mean)
        due_now = (self.validation_s if validation_due else 0.0) + (self.save_s if checkpoint_due else 0.0)
        return self.elapsed() + due_now + next_iteration + self.final_reserve(validates) > self.max_seconds


def stop_words(reason: str, max_seconds: float | None = None) -> str:
    """Plain words for a stop reason: ``"stopped at the time limit (2.0 min)"``; ``""`` for none."""
    if reason == STOP_TIME_BUDGET:
        limit = f" ({format_seconds(max_seconds)})" if max_seconds else ""
        return f"stopped at the time limit{limit}"
    if reason == STOP_PLATEAU:
        return "stopped early, the validation Dice no longer improved"
    return ""


def describe_stop(reason: str, done: int, total: int, max_seconds: float | None = None) -> str:
    """Plain words for how a run ended (the app's training status).

    ``"after 200 iterations"``, ``"after 37 of 215 iterations: stopped at the time limit
    (2.0 min)"`` or ``"after 40 of 200 iterations: stopped early, the validation Dice no longer
    improved"``.
    """
    words = stop_words(reason, max_seconds)
    return f"after {done} of {total} iterations: {words}" if words else f"after {done} iterations"
