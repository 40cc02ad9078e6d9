"""Make the README screenshots of the BARL widget (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_widget.py \
        --iterations 120 --proposals docs/images/proposals.png

Paints three slices of the phantom from its ground truth, trains a small model in
the background (the widget predicts the case when training ends), then grabs

* ``docs/images/widget.png``: the disagreement map, viewer on the top suggested slice;
* with ``--proposals PATH``: the agreement-gated ``proposal`` and ``needs a human``
  layers on an unannotated slice, the Proposals tab and the uncertainty minimap in view.

``--tools PATH`` instead grabs the radiologist's tools without training (seconds): two
slices painted in full-slice mode, *Fill between slices* outlined between them, the linked
coronal/sagittal views docked below, the CBCT window applied.

One training round serves both pictures, so the second costs nothing extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QDockWidget, QScrollArea

from napari_barl.launch import open_app

ANNOTATED = (14, 32, 50)


def _settle(seconds: float = 0.6) -> None:
    """Let Qt paint (and napari refresh its canvas) before a grab."""
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _close_toasts(viewer) -> None:
    """Dismiss napari's notification pop-ups so they do not cover the canvas."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:  # private module: a missing toast class only means toasts stay
        return
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    _settle(0.3)


def _grab(viewer, out: str) -> None:
    _close_toasts(viewer)
    _settle()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(out)
    print(f"wrote {out}")


def _proposal_slice(proposal: np.ndarray, skip) -> int | None:
    """Unannotated slice showing both a proposal and some "needs a human" voxels."""
    from barl_core.active.proposals import NEEDS_HUMAN

    best, best_score = None, 0
    for z in range(proposal.shape[0]):
        if z in skip:
            continue
        sl = proposal[z]
        fg = int(((sl != NEEDS_HUMAN) & (sl != 0)).sum())
        needs = int((sl == NEEDS_HUMAN).sum())
        score = min(fg, 4 * needs)  # mostly proposed, with a visible magenta rim
        if score > best_score:
            best, best_score = z, score
    return best


def _tools_shot(out: str) -> int:
    """Fill between slices and the linked views on the phantom (no training)."""
    from napari_barl._tools_panel import WINDOW_PRESETS

    viewer, w = open_app(Path(tempfile.mkdtemp(prefix="barl-shot-")), show=True)
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    truth = np.asarray(viewer.layers["ground truth"].data)
    case = w.state.case
    z0, z1 = 24, 36
    for z in (z0, z1):
        w.case_view.go_to(case, z)
        w.case_view.labels_layer.data[z] = truth[z]
        w.case_view.sync.annotated.add(z)
    w.case_view.sync.schedule()
    w.case_view.save_now()
    w.case_view.go_to(case, (z0 + z1) // 2)
    w.tools.apply_window(next(p for p in WINDOW_PRESETS if p.name.startswith("CBCT")))
    w.tools.fill_btn.click()
    w.tools.ortho_btn.click()
    scroll = w.findChild(QScrollArea)
    if scroll is not None:
        scroll.ensureWidgetVisible(w.tools, 0, 10)
    _settle(1.0)
    _grab(viewer, out)
    w.shutdown()
    viewer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Take the README/user-guide screenshots; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/widget.png")
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--patch", type=int, nargs=3, default=(16, 48, 48))
    parser.add_argument("--proposals", default=None, metavar="PATH",
                        help="also grab the proposal view to PATH")
    parser.add_argument("--tools", default=None, metavar="PATH",
                        help="only grab the tools (fill between, linked views) to PATH")
    args = parser.parse_args(argv)
    if args.tools:
        return _tools_shot(args.tools)

    viewer, w = open_app(Path(tempfile.mkdtemp(prefix="barl-shot-")), show=True)
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    for dock in win.findChildren(QDockWidget):
        if "BARL" in dock.windowTitle() or "BARL" in dock.objectName():
            win.resizeDocks([dock], [560], Qt.Horizontal)  # wide enough: no h-scrollbar
    truth = np.asarray(viewer.layers["ground truth"].data)
    case = w.state.case
    for z in ANNOTATED:
        w.case_view.labels_layer.data[z] = truth[z]
        w.case_view.sync.annotated.add(z)
    w.case_view.sync.schedule()
    w.case_view.save_now()
    tp = w.training
    tp.iterations.setValue(args.iterations)
    for sb, v in zip(tp.patch, args.patch, strict=True):
        sb.setValue(v)
    tp.device_box.setCurrentText("CPU")
    t0 = time.time()
    tp.train_btn.click()
    deadline = time.time() + 900
    while time.time() < deadline and ("disagreement" not in viewer.layers or w.jobs.is_busy()):
        QApplication.processEvents()
        time.sleep(0.05)
    if "disagreement" not in viewer.layers:
        print("no prediction appeared", file=sys.stderr)
        return 1
    print(f"trained and predicted in {time.time() - t0:.0f} s")
    lst = w.review.suggestions
    if lst.count():
        w.case_view.go_to(case, int(lst.item(0).text().split("slice")[1].split()[0]))
    viewer.layers["ground truth"].visible = False
    for name in ("proposal", "needs a human"):  # the first picture is about disagreement
        if name in viewer.layers:
            viewer.layers[name].visible = False
    _grab(viewer, args.out)

    if args.proposals:
        q = w.quality
        if q.proposal is None:
            print("no proposal layers appeared", file=sys.stderr)
            return 1
        z = _proposal_slice(q.proposal, set(ANNOTATED))
        if z is None:
            print("no unannotated slice has a proposal", file=sys.stderr)
            return 1
        for name in ("disagreement", "prediction"):
            viewer.layers[name].visible = False
        for name in ("proposal", "needs a human"):
            viewer.layers[name].visible = True
        w.case_view.go_to(case, z)
        q.tabs.setCurrentIndex(0)  # Proposals
        q.update_status()
        scroll = w.findChild(QScrollArea)
        if scroll is not None:  # minimap (top) and Proposals tab both in view
            scroll.ensureWidgetVisible(w.annotation.minimap, 0, 10)
            scroll.ensureWidgetVisible(q.tabs, 0, 10)
        _grab(viewer, args.proposals)
    w.shutdown()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
