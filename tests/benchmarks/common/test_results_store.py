"""The results file: NaN as null, the machine of every session, resume."""

from __future__ import annotations

import json

from benchmarks import common


def test_results_store_resumes_and_writes_machine(tmp_path):
    path = tmp_path / "r.json"
    store = common.ResultsStore.open(path, "x", resume=False, config={"a": 1})
    store.add_run("k1", {"v": float("nan")})
    data = json.loads(path.read_text())  # NaN written as null: valid JSON
    assert data["runs"]["k1"]["v"] is None
    machine = data["sessions"][0]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["torch"] and machine["command"]
    again = common.ResultsStore.open(path, "x", resume=True, config={"a": 1})
    assert again.has("k1") and len(again.data["sessions"]) == 2
    assert not common.ResultsStore.open(path, "x", resume=False, config={}).has("k1")
