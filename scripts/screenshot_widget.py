"""Make docs/images/widget.png: the widget after one training round (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_widget.py

Paints three slices of the phantom from its ground truth, trains a small model in
the background, waits for the prediction, and grabs the window with the
disagreement map visible and the viewer on the top suggested slice.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_barl.launch import open_app


def main(out: str = "docs/images/widget.png", iterations: int = 15) -> int:
    viewer, w = open_app(Path(tempfile.mkdtemp(prefix="barl-shot-")), show=True)
    viewer.window._qt_window.resize(1500, 950)
    truth = np.asarray(viewer.layers["ground truth"].data)
    case = w.current_case
    for z in (14, 32, 50):
        w.labels_layer.data[z] = truth[z]
        w.sync.annotated.add(z)
    w.sync.schedule()
    w.save_now()
    tp = w.training
    tp.iterations.setValue(iterations)
    for sb, v in zip(tp.patch, (16, 48, 48), strict=True):
        sb.setValue(v)
    tp.device_box.setCurrentText("CPU")
    tp.train_btn.click()
    deadline = time.time() + 900
    while time.time() < deadline and ("disagreement" not in viewer.layers or w.is_busy()):
        QApplication.processEvents()
        time.sleep(0.05)
    if "disagreement" not in viewer.layers:
        print("no prediction appeared", file=sys.stderr)
        return 1
    lst = w.review.suggestions
    if lst.count():
        w.go_to(case, int(lst.item(0).text().split("slice")[1].split()[0]))
    viewer.layers["ground truth"].visible = False
    for _ in range(30):
        QApplication.processEvents()
        time.sleep(0.02)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(out)
    print(f"wrote {out}")
    w.shutdown()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:2]))
