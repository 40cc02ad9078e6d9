"""``iteration_profile.py`` at tiny sizes: every phase of every method, and the ratios."""

from __future__ import annotations

import json


def test_iteration_profile_smoke(tmp_path):
    from benchmarks import iteration_profile

    out = tmp_path / "ip.json"
    assert iteration_profile.main(["--smoke", "--methods", "supervised,barl", "--out", str(out),
                                   "--work-dir", str(tmp_path)]) == 0
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"supervised", "barl", iteration_profile.NETWORK}
    phases = data["results"]["barl"]["phases_s"]
    assert {"sample", "views", "forward", "loss:sup", "loss:dpr", "loss:pcbc", "backward", "optimizer"} <= set(phases)
    assert "loss:dpr" not in data["results"]["supervised"]["phases_s"]
    assert set(data["ratios"]) >= {"supervised/network", "barl/supervised"}
    assert "| barl" in iteration_profile.render_table(data) and data["sessions"][-1]["finished"]
