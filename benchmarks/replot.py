"""Redraw the label-efficiency and active-learning plots from their results JSON.

A run stopped by ``--max-minutes`` (or by hand) leaves its JSON but no plot; this draws
the plot from whatever runs finished, with the scripts' own ``summarise`` and ``plot``.

    python benchmarks/replot.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import active_learning  # noqa: E402
from benchmarks.label_efficiency_parts import plots as le_plots  # noqa: E402
from benchmarks.label_efficiency_parts import summary as le_summary  # noqa: E402


def main() -> int:
    results = HERE / "results"
    le = results / "label_efficiency.json"
    if le.exists():
        data = json.loads(le.read_text())
        summary = le_summary.summarise(data["runs"], data["config"]["class_names"])
        le_plots.plot(summary, results / "label_efficiency.png", "hippocampus: Dice vs labelled budget")
    al = results / "active_learning.json"
    if al.exists():
        data = json.loads(al.read_text())
        summary = active_learning.summarise(data["runs"], data["config"]["strategies"])
        active_learning.plot(summary, results / "active_learning.png", "hippocampus: Dice vs annotated slices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
