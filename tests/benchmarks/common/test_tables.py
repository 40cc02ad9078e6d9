"""Mean ± sd and markdown tables."""

from __future__ import annotations

from benchmarks import common


def test_markdown_table_and_mean_sd():
    assert common.fmt_mean_sd([1.0, 3.0], 2) == "2.00 ± 1.41"
    assert common.fmt_mean_sd([None, float("nan")]) == "n/a"
    table = common.markdown_table(["a", "bb"], [[1, 2], ["xyz", 4]])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| a ") and set(lines[1]) <= {"|", "-"}
