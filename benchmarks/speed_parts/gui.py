"""Event-loop stalls of a Qt application while a training job runs in a child process."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common

from .children import SCRIPT, child_env

__all__ = ["measure_gui", "gui_child"]

_GUI_TIMEOUT_S = 600


def measure_gui(args: argparse.Namespace, cases: dict, labels: dict, work: Path) -> dict:
    """Heartbeat gaps of a Qt event loop while a TrainJob runs (in a child, Qt offscreen)."""
    from barl_core.data.phantom import PHANTOM_CLASSES

    cfg = common.build_train_config(
        method="barl", iterations=args.gui_iterations, patch=args.patch, base_channels=args.base_channels,
        num_classes=len(PHANTOM_CLASSES), seed=0, batch_labeled=args.batch_labeled,
        batch_unlabeled=args.batch_unlabeled, device=args.device, class_names=PHANTOM_CLASSES,
        num_threads=args.threads)
    img_dir, lab_dir = common.materialise(cases, labels, work / "gui_data")
    cfg_path = work / "gui_config.json"
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    res_path = work / "gui.json"
    env = child_env(args)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--_gui-child", "--_config", str(cfg_path),
                           "--_images", str(img_dir), "--_labels", str(lab_dir), "--_out", str(work / "gui_run"),
                           "--_json", str(res_path)], env=env, timeout=_GUI_TIMEOUT_S + 60)
    if proc.returncode == 3:
        reason = json.loads(res_path.read_text())["skipped"] if res_path.exists() else "Qt unavailable"
        print(f"[speed] gui: skipped ({reason})")
        return {"skipped": reason}
    if proc.returncode != 0 or not res_path.exists():
        return {"error": f"the GUI child failed with exit code {proc.returncode}"}
    res = json.loads(res_path.read_text())
    print(f"[speed] gui: longest stall {res['training']['max_gap_ms']:.1f} ms, p99 "
          f"{res['training']['p99_gap_ms']:.1f} ms over {res['training']['ticks']} heartbeats", flush=True)
    return res


def _gap_stats(stamps: list[float]) -> dict:
    gaps = np.diff(np.asarray(stamps)) * 1000.0
    if gaps.size == 0:
        return {"ticks": len(stamps), "max_gap_ms": float("nan"), "p99_gap_ms": float("nan"),
                "median_gap_ms": float("nan")}
    return {"ticks": len(stamps), "max_gap_ms": float(gaps.max()), "p99_gap_ms": float(np.percentile(gaps, 99)),
            "median_gap_ms": float(np.median(gaps))}


def gui_child(args: argparse.Namespace) -> int:
    try:
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication
    except Exception as exc:  # noqa: BLE001 - any Qt import failure means "no Qt here"
        Path(args._json).write_text(json.dumps({"skipped": f"Qt is not available: {exc}"}))
        return 3
    from barl_core.runtime.jobs import TrainJob
    from barl_core.training.config import TrainConfig

    cfg = TrainConfig.from_dict(json.loads(Path(args._config).read_text()))
    app = QApplication.instance() or QApplication([])
    state: dict = {"phase": "idle", "idle": [], "training": [], "handle": None, "updates": 0,
                   "final": None, "t_phase": time.perf_counter()}

    def tick() -> None:
        now = time.perf_counter()
        state[state["phase"]].append(now)
        if state["phase"] == "idle":
            if now - state["t_phase"] >= 1.0:
                state["phase"] = "training"
                state["t_phase"] = time.perf_counter()
                state["handle"] = TrainJob.start(cfg, args._images, args._labels, args._out)
            return
        handle = state["handle"]
        for update in handle.poll():  # what the plugin's worker does: drain the queue
            state["updates"] += 1
            if update.kind in ("done", "error", "cancelled"):
                state["final"] = update
        if state["final"] is not None or now - state["t_phase"] > _GUI_TIMEOUT_S:
            if state["final"] is None:
                handle.cancel()
            app.quit()

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    t0 = time.perf_counter()
    app.exec_() if hasattr(app, "exec_") else app.exec()
    timer.stop()
    if state["handle"] is not None:
        state["handle"].wait(30)
    final = state["final"]
    res = {
        "interval_ms": 10,
        "qt_platform": os.environ.get("QT_QPA_PLATFORM") or "default",
        "iterations": cfg.iterations,
        "job_status": getattr(final, "kind", "timeout"),
        "job_message": getattr(final, "message", None),
        "progress_updates": state["updates"],
        "training_wall_s": round(time.perf_counter() - t0 - 1.0, 2),
        "idle": _gap_stats(state["idle"]),
        "training": _gap_stats(state["training"]),
    }
    Path(args._json).write_text(json.dumps(res, indent=1))
    return 0 if res["job_status"] == "done" else 1
