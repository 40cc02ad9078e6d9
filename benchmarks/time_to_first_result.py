"""Time to first result in the app: from pressing Train to a prediction layer on screen.

What a radiologist waits for with the ``quick`` preset (a plan sized to its time budget on
this machine, see :mod:`barl_core.training.planner`): the dock through npe2, the demo
phantom as a case, a few slices painted from its ground truth, Train pressed; the clock
stops when the prediction and disagreement layers are shown (training, then predicting the
case, then drawing). Needs a display; under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/time_to_first_result.py

Prints the plan and the seconds, and writes a JSON file (machine, command, plan, times).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info  # noqa: E402

#: Slices painted from the phantom's ground truth (the README screenshot's choice).
SLICES = (14, 32, 50)


def main(argv: list[str] | None = None) -> int:
    """Measure once; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--budget", type=float, default=None,
                        help="time budget in seconds (default: the preset's)")
    parser.add_argument("--small", action="store_true", help="the small phantom (32x48x48)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", default="benchmarks/results/time_to_first_result.json")
    args = parser.parse_args(argv)

    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_barl._prediction_view import PREDICTION_LAYER

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-barl", "phantom_small" if args.small else "phantom")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-barl", "BARL segmentation")
    w.workspace_panel.open_workspace(Path(tempfile.mkdtemp(prefix="barl-ttfr-")))
    [case] = w.workspace_panel.add_viewer_images()
    truth = np.asarray(viewer.layers["ground truth"].data)
    for z in SLICES:
        w.case_view.go_to(case, z)
        w.case_view.labels_layer.data[z] = truth[z]
        w.case_view.sync.annotated.add(z)
    w.case_view.sync.schedule()
    w.case_view.save_now()
    tp = w.training
    tp.preset_box.setCurrentText(args.preset)
    if args.budget is not None:
        tp.budget_on.setChecked(True)
        tp.budget_s.setValue(int(args.budget))
    seen: dict[str, float] = {}
    t0 = time.perf_counter()
    tp.train_btn.click()
    while time.perf_counter() - t0 < args.timeout:
        QApplication.processEvents()
        now = time.perf_counter() - t0
        if tp.plan is not None:
            seen.setdefault("plan_shown_s", now)
        if w.state.model is not None:
            seen.setdefault("model_ready_s", now)
        if PREDICTION_LAYER in viewer.layers:
            seen["prediction_shown_s"] = now
            break
        time.sleep(0.02)
    w.shutdown()
    if "prediction_shown_s" not in seen:
        print(f"no prediction within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    result = {
        "machine": machine_info(),
        "preset": args.preset,
        "time_budget_s": tp.time_budget_s(),
        "volume": list(truth.shape),
        "painted_slices": list(SLICES),
        "plan": tp.plan,
        **{k: round(v, 1) for k, v in seen.items()},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
