"""Retake the README and user-guide screenshots from a real walk through the app (Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" nice -n 19 python scripts/screenshots.py

Goes the user's way, as the GUI tests do: napari with the plugin docked through npe2
(``add_plugin_dock_widget``), a workspace opened with the folder dialog, slices painted
through the labels layer (data plus the paint event napari's brush sends), Train clicked
with the panel's own controls (CPU, a short run), the prediction arriving from the training
child. Two walks:

1. the **CBCT phantom** from the plugin's sample data, added with "Add open images":
   ``tools.png`` (CBCT window/level, *Fill between slices* between two painted slices, the
   linked coronal/sagittal views, before training), ``widget.png`` (prediction and the
   colour-barred disagreement map, the suggestions and the minimap), ``proposals.png``
   (agreement-gated proposal, "needs a human" outlined, the Proposals tab);
2. a **hippocampus MRI** (``../shared/data/hippocampus``, skipped when absent) added with
   "Add files...": ``hippocampus.png`` (MR auto-contrast, prediction and disagreement map in
   the linked views).

Each grab is scaled to at most ``--width`` pixels wide and saved as an 8-bit palette PNG
(a few hundred KB at most).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_barl.testing import paint_slice

ROOT = Path(__file__).resolve().parents[1]
PLUGIN, WIDGET = "napari-barl", "BARL segmentation"
HIPPO = ROOT.parent / "shared" / "data" / "hippocampus"


def _settle(seconds: float = 0.6) -> None:
    """Let Qt paint (and napari refresh its canvas) before a grab."""
    from qtpy.QtWidgets import QApplication

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


def _grab(viewer, out: Path, width: int) -> None:
    """Grab the whole window (dock and canvas), downscale, save as a palette PNG."""
    from PIL import Image
    from qtpy.QtCore import QBuffer, QByteArray, QIODevice

    _close_toasts(viewer)
    _settle()
    buf_bytes = QByteArray()
    buf = QBuffer(buf_bytes)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    viewer.window._qt_window.grab().save(buf, "PNG")
    buf.close()
    import io

    img = Image.open(io.BytesIO(bytes(buf_bytes))).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)", flush=True)


def _answer_dialogs(folder: Path | None = None, files: list[Path] | None = None) -> None:
    """Make the next folder/file dialog answer ``folder`` / ``files`` (as a user would pick)."""
    from qtpy.QtWidgets import QFileDialog

    if folder is not None:
        QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: str(folder))
    if files is not None:
        QFileDialog.getOpenFileNames = staticmethod(lambda *a, **k: ([str(p) for p in files], ""))


def _open_viewer(workspace: Path):
    """Open a 1600x1000 viewer with the plugin docked through npe2 and a workspace open."""
    import napari
    from qtpy.QtCore import Qt

    viewer = napari.Viewer(title="napari-barl", show=True)
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    dock, w = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    win.resizeDocks([dock], [560], Qt.Orientation.Horizontal)  # wide enough: no h-scrollbar
    _answer_dialogs(folder=workspace)
    w.workspace_panel.open_ws_btn.click()
    _settle()
    return viewer, w


def _train(viewer, w, iterations: int, patch, timeout: float = 1200) -> bool:
    """Click Train (CPU, ``iterations``, ``patch``) and wait for the prediction layers."""
    from qtpy.QtWidgets import QApplication

    tp = w.training
    tp.budget_on.setChecked(False)  # the iterations and patch given here, not a plan
    tp.iterations.setValue(iterations)
    for sb, v in zip(tp.patch, patch, strict=True):
        sb.setValue(v)
    tp.device_box.setCurrentText("CPU")
    t0 = time.time()
    tp.train_btn.click()
    deadline = time.time() + timeout
    while time.time() < deadline and ("disagreement" not in viewer.layers or w.jobs.is_busy()):
        QApplication.processEvents()
        time.sleep(0.05)
    ok = "disagreement" in viewer.layers
    print(
        f"trained and predicted in {time.time() - t0:.0f} s" if ok else "no prediction appeared",
        flush=True,
    )
    return ok


def _show(w, *widgets) -> None:
    """Scroll the dock so that ``widgets`` are in view (the last one wins if not all fit)."""
    _settle(0.3)  # the layout must have placed them first
    for widget in widgets:
        w.scroll.ensureWidgetVisible(widget, 0, 10)
    _settle(0.3)


def _preset(name: str):
    from napari_barl._tools_panel import WINDOW_PRESETS

    return next(p for p in WINDOW_PRESETS if p.name.startswith(name))


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


def _top_suggestion(w) -> int | None:
    lst = w.review.suggestions
    if not lst.count():
        return None
    return int(lst.item(0).text().split("slice")[1].split()[0])


def phantom_walk(out: Path, args) -> int:
    """Walk the CBCT phantom: tools before training, then prediction, suggestions, proposals."""
    viewer, w = _open_viewer(Path(tempfile.mkdtemp(prefix="barl-shot-")) / "ws")
    viewer.open_sample(PLUGIN, "phantom")  # File > Open Sample > napari-barl
    truth = np.asarray(viewer.layers["ground truth"].data)
    w.workspace_panel.add_layers_btn.click()  # "Add open images"
    case = w.state.case
    painted = (14, 24, 36, 50)
    for z in painted:
        w.case_view.go_to(case, z)
        paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.save_now()
    viewer.layers["ground truth"].visible = False

    # tools: CBCT window, fill between two painted slices, linked views
    w.case_view.go_to(case, 30)
    w.tools.apply_window(_preset("CBCT"))
    w.tools.fill_btn.click()
    w.tools.ortho_btn.click()
    _show(w, w.tools.ortho_btn, w.tools)
    _settle(1.0)
    _grab(viewer, out / "tools.png", args.width)
    for name in [ly.name for ly in viewer.layers if "fill" in ly.name.lower()]:
        viewer.layers[name].visible = False
    if args.only == "tools":
        w.shutdown()
        viewer.close()
        return 0

    if not _train(viewer, w, args.iterations, args.patch):
        return 1
    z = _top_suggestion(w)
    if z is not None:
        w.case_view.go_to(case, z)
    for name in ("proposal", "needs a human"):  # this picture is about disagreement
        if name in viewer.layers:
            viewer.layers[name].visible = False
    _show(w, w.review, w.annotation.minimap)
    _grab(viewer, out / "widget.png", args.width)

    q = w.quality
    z = _proposal_slice(q.proposal, set(painted)) if q.proposal is not None else None
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
    _show(w, w.annotation.minimap, q.tabs)
    _grab(viewer, out / "proposals.png", args.width)
    w.shutdown()
    viewer.close()
    return 0


def hippocampus_walk(out: Path, args) -> int:
    """Walk a hippocampus MRI added as a file: MR window, prediction in the linked views."""
    from barl_core.io.volume import read_volume

    image = HIPPO / "imagesTr" / args.hippocampus_case
    label = HIPPO / "labelsTr" / args.hippocampus_case
    if not image.exists():
        print(f"skipping the hippocampus walk: {image} is absent", file=sys.stderr)
        return 0
    viewer, w = _open_viewer(Path(tempfile.mkdtemp(prefix="barl-shot-")) / "ws")
    _answer_dialogs(files=[image])
    w.workspace_panel.add_files_btn.click()  # "Add files..."
    _settle()
    w.classes.add_class_btn.click()  # the MSD task has two structures
    for i, name in enumerate(("anterior", "posterior"), start=1):  # double-click, type
        w.classes.class_list.item(i).setText(name)
    truth = np.asarray(read_volume(label).array).astype(np.uint8)
    case = w.state.case
    # three axial slices through the structure, as a user paints them
    fg = np.nonzero(truth.reshape(truth.shape[0], -1).any(1))[0]
    painted = [int(fg[int(i * (len(fg) - 1) / 4)]) for i in (1, 2, 3)]
    for z in painted:
        w.case_view.go_to(case, z)
        paint_slice(w.case_view.labels_layer, z, truth[z])
    w.case_view.save_now()
    w.tools.apply_window(_preset("MR"))
    if not _train(viewer, w, args.hippocampus_iterations, args.hippocampus_patch):
        return 1
    for name in ("proposal", "needs a human"):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    unpainted = [int(z) for z in fg if int(z) not in painted]
    w.case_view.go_to(case, unpainted[len(unpainted) // 2] if unpainted else painted[0])
    w.tools.ortho_btn.click()
    _show(w, w.review)
    _settle(1.0)
    _grab(viewer, out / "hippocampus.png", args.width)
    w.shutdown()
    viewer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--width", type=int, default=1280, help="downscale grabs to this width")
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--patch", type=int, nargs=3, default=(16, 48, 48))
    parser.add_argument("--hippocampus-case", default="hippocampus_001.nii.gz")
    parser.add_argument("--hippocampus-iterations", type=int, default=120)
    parser.add_argument("--hippocampus-patch", type=int, nargs=3, default=(16, 32, 32))
    parser.add_argument("--only", choices=("phantom", "tools", "hippocampus"), default=None)
    args = parser.parse_args(argv)
    # the walk's choices (iterations, device) must not become the user's saved settings
    os.environ.setdefault("NAPARI_BARL_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    rc = 0
    if args.only in (None, "phantom", "tools"):
        rc |= phantom_walk(args.out, args)
    if args.only in (None, "hippocampus"):
        rc |= hippocampus_walk(args.out, args)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
