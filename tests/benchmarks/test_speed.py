"""``speed.py`` end to end at tiny sizes: every part, and a run of one part keeping the others."""

from __future__ import annotations

import json


def test_speed_smoke(tmp_path, capsys):
    from benchmarks import speed

    out = tmp_path / "speed.json"
    speed.main(["--smoke", "--methods", "supervised,barl", "--out", str(out), "--plot", str(tmp_path / "s.png"),
                "--threads", "1"])
    data = json.loads(out.read_text())
    assert set(data["train"]["methods"]) == {"supervised", "barl"} and data["train"]["ratios"]["barl/supervised"] > 0
    for res in data["inference"]["precisions"].values():  # float32, and bfloat16 where native
        assert res["barl_core"]["median_s"] > 0 and res["monai"]["median_s"] > 0 and res["ratio_barl_core/monai"] > 0
    assert "float32" in data["inference"]["precisions"]
    options = data["options"]["options"]
    assert options["float32, no_grad"]["speedup"] == 1.0 and options["float32, channels_last_3d"]["max_softmax_change"] < 1e-3
    app = data["interactive"]
    assert app["slice_s"] > 0 and app["whole_s"] > 0 and app["job_status"] == "done"
    assert 0 <= app["slice_label_agreement"] <= 1 and 0 <= app["dice_auto"] <= 1
    assert data["large"]["size_zyx"] == [32, 32, 32] and data["large"]["target_spacing"] == [0.6, 0.6, 0.6]
    (mem,) = data["memory"]["volumes"]
    assert mem["size_zyx"] == [32, 32, 32] and mem["peak_rss_bytes"] >= mem["rss_with_volume_bytes"] > 0
    assert mem["estimate_bytes"] > mem["input_bytes"] == 32**3 * 4
    gui = data["gui"]
    assert "skipped" in gui or (gui["job_status"] == "done" and gui["training"]["ticks"] > 1)
    printed = capsys.readouterr().out
    assert "Training iteration time" in printed and "Peak memory" in printed and "current slice" in printed
    # a run of one part keeps the other parts' results and replaces its own
    speed.main(["--smoke", "--parts", "memory", "--sizes", "24x32x16", "--out", str(out), "--plot", "",
                "--threads", "1"])
    again = json.loads(out.read_text())
    assert again["train"] == data["train"] and again["gui"] == data["gui"] and again["interactive"] == app
    assert [v["size_zyx"] for v in again["memory"]["volumes"]] == [[24, 32, 16]]
    assert len(again["sessions"]) == 2
