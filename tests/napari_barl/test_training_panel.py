"""Issue 15: the quick preset plans to its time budget, shows the plan and the validation Dice.

Driven the user's way: the npe2 dock, files added through the dialog, painted slices, the
real training child on small phantoms (a tiny budget keeps it short).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from barl_core.io.volume import read_volume
from barl_core.training.planner import PRESET_TIME_BUDGETS

from .conftest import (
    add_files_via_dialog,
    dock,
    open_workspace_via_dialog,
    paint_slice,
    phantom_files,
)

pytestmark = pytest.mark.gui

N_CASES = 6  # the trainer validates on held-out cases from 5 labelled cases on
SLICES = (6, 12, 18)


def test_quick_preset_stands_for_its_time_budget(make_napari_viewer):
    w = dock(make_napari_viewer(show=True))
    tp = w.training
    tp.preset_box.setCurrentText("full")
    assert tp.time_budget_s() is None and tp.iterations.isEnabled()
    tp.preset_box.setCurrentText("quick")
    assert tp.time_budget_s() == PRESET_TIME_BUDGETS["quick"]
    assert not tp.iterations.isEnabled(), "the plan sets the iterations"
    w.shutdown()


@pytest.mark.slow  # a real training child: PyQt5 pass only (scripts/test.sh)
def test_quick_plan_and_validation_dice_in_the_dock(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    pairs = [phantom_files(tmp_path / "data", seed=s) for s in range(N_CASES)]
    add_files_via_dialog(w, monkeypatch, [img for img, _ in pairs])
    for s, (_img, truth_path) in enumerate(pairs):
        truth = (read_volume(truth_path).array > 0).astype(np.uint8)
        for z in SLICES:
            w.case_view.go_to(f"phantom{s}", z)
            paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.save_now()
    tp = w.training
    assert tp.preset_box.currentText() == "quick" and tp.budget_on.isChecked()
    tp.budget_s.setValue(12)  # tiny: seconds, not the two minutes of the preset
    tp.base_channels.setValue(4)
    tp.device_box.setCurrentText("CPU")
    tp.predict_after.setChecked(False)
    tp.train_btn.click()
    qtbot.waitUntil(lambda: tp.plan is not None, timeout=240_000)
    # the plan is on show while it trains: patch, iterations, expected time
    text = tp.plan_label.text()
    patch = "x".join(map(str, tp.plan["patch_size"]))
    assert f"patch {patch}" in text and f"{tp.plan['iterations']} iterations" in text
    assert "budget 12 s" in text
    assert tp.plan["max_seconds"] and "at the latest" in text, "the plan line shows the deadline the trainer keeps"
    qtbot.waitUntil(lambda: w.state.model == "v1" and not w.jobs.is_busy(), timeout=300_000)

    ws = w.state.workspace
    version = ws.current_version()
    assert version.config["iterations"] == tp.plan["iterations"], "the version records the plan"
    assert list(version.config["patch_size"]) == tp.plan["patch_size"]
    # the validation Dice the trainer logged is the curve next to the loss
    rows = [json.loads(line) for line in (ws.folder / Path(version.path).parent / "metrics.jsonl").open()]
    logged = [r["val_dice"] for r in rows if "val_dice" in r]
    assert logged, "the run validated (held-out cases)"
    assert [d for _it, d in tp.loss_plot.val_dice] == pytest.approx(logged)
    assert tp.loss_plot.values and all(0.0 <= d <= 1.0 for d in logged)
    w.shutdown()


def test_status_warns_when_validation_sees_overreach(make_napari_viewer):
    """The sparse validation slices cannot see false positives on other slices; over-reach can."""
    from barl_core.runtime.protocol import ProgressUpdate

    w = dock(make_napari_viewer(show=True))
    tp = w.training
    tp.start_display("training")
    tp.show_update(ProgressUpdate("progress", iteration=50, total=100, metrics={"val_dice": 0.86, "val_overreach": 0.0}))
    assert "warning" not in tp.eta_label.text()
    tp.show_update(ProgressUpdate("progress", iteration=60, total=100, metrics={"val_dice": 0.86, "val_overreach": 0.85}))
    assert "warning: 85% of the predicted structure" in tp.eta_label.text()
    tp.show_update(ProgressUpdate("progress", iteration=61, total=100))  # stays until the next validation
    assert "warning: 85%" in tp.eta_label.text()
    tp.start_display("training")  # a new run starts clean
    tp.show_update(ProgressUpdate("progress", iteration=1, total=100))
    assert "warning" not in tp.eta_label.text()
    w.shutdown()
