"""benchmarks/gpu_check.py runs end to end on the CPU at tiny sizes, so it cannot rot before a
GPU machine runs it; report.py renders what it writes.
"""

from __future__ import annotations

import json


def test_gpu_check_tiny_on_cpu(tmp_path, write_la):
    from benchmarks import gpu_check, report

    la = tmp_path / "LA"
    write_la(la, 3, 1)  # the check trains on the 3 cases of train.list
    out = tmp_path / "results" / "gpu_check.json"
    gpu_check.main(["--device", "cpu", "--tiny", "--threads", "1", "--methods", "supervised,cps,barl",
                    "--la-root", str(la), "--out", str(out), "--work-dir", str(tmp_path / "work")])
    data = json.loads(out.read_text())
    methods = data["methods"]["methods"]
    assert set(methods) == {"supervised", "cps", "barl"} and all(v["its_per_s"] > 0 for v in methods.values())
    assert data["methods"]["barl/cps_time"] > 0 and not methods["barl"]["amp"]  # AMP is CUDA only
    assert data["predict"]["size_zyx"] == [32, 32, 32] and data["predict"]["seconds"] > 0
    release = data["release"]
    assert release["done_status"] == "done" and release["cancel_status"] == "cancelled"
    assert release["returned"] is None  # no device memory on the CPU
    oom = data["oom"]  # the injected out-of-memory went through the trainer's back-off and finished
    assert oom["simulated"] and oom["train"].startswith("finished") and oom["backoff_messages"]
    assert oom["batch_after"] != oom["batch_before"] or oom["patch_after"] != oom["patch_before"]
    assert data["la"]["cases"] == 3 and data["la"]["loss_first"] is not None
    # rendered by report.py like every benchmark
    doc = tmp_path / "b.md"
    doc.write_text("<!-- BEGIN:gpu_check -->\nold\n<!-- END:gpu_check -->\n")
    report.main(["--results", str(out.parent), "--update", str(doc)])
    text = doc.read_text()
    assert "old" not in text and "iterations/s" in text and "simulated" in text


def test_gpu_check_skips_la_without_data(tmp_path):
    from benchmarks import gpu_check

    args = gpu_check.parse_args(["--device", "cpu", "--tiny", "--la-root", str(tmp_path / "missing")])
    assert "skipped" in gpu_check.check_la(args, tmp_path)
