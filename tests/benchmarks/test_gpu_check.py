"""benchmarks/gpu_check.py runs end to end on the CPU at tiny sizes, so it cannot rot before a
GPU machine runs it; report.py renders what it writes.
"""

from __future__ import annotations

import json

import numpy as np


def _fake_la(root, n=3, shape=(24, 24, 16)):
    """A tiny Left Atrium dataset in the UA-MT layout: case folders with mri_norm2.h5, lists."""
    import h5py

    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        case = root / "2018LA_Seg_Training Set" / f"case{i}"
        case.mkdir(parents=True)
        label = np.zeros(shape, np.uint8)
        label[6:18, 6:18, 4:12] = 1
        image = (rng.normal(0, 0.3, shape) + label).astype(np.float32)
        with h5py.File(case / "mri_norm2.h5", "w") as fh:
            fh["image"], fh["label"] = image, label
        names.append(f"case{i}")
    (root / "train.list").write_text("\n".join(names) + "\n")
    (root / "test.list").write_text(names[-1] + "\n")
    return root


def test_gpu_check_tiny_on_cpu(tmp_path, monkeypatch):
    from benchmarks import gpu_check, report

    la = _fake_la(tmp_path / "LA")
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
