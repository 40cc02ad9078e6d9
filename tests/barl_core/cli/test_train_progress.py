"""`barl train`'s validation line: the Dice, and what the sparse validation slices cannot see."""

from __future__ import annotations

import io

from barl_core.cli.train import ProgressBar
from barl_core.training.trainer import TrainProgress


def _line(validation: dict) -> str:
    out = io.StringIO()
    ProgressBar(out)(TrainProgress(iteration=250, total=1000, losses={"loss": 0.5}, its_per_s=2.0, eta_s=60.0,
                                   lr=1e-3, validation=validation))
    return next(line for line in out.getvalue().splitlines() if "validation Dice" in line)


def test_validation_line_names_the_overreach_only_when_it_matters():
    base = {"dice": 0.862, "best": 0.862, "best_iteration": 250.0}
    assert _line({**base, "overreach": 0.0}) == "barl: iteration 250: validation Dice 0.8620 (best 0.8620 at 250)"
    line = _line({**base, "overreach": 0.854})
    assert line.endswith("; 85% of the predicted structure on slices it over-fills")
