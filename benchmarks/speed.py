"""Speed and memory, measured in one run so the ratios compare like with like.

Four measurements (each can be selected with ``--parts``):

``train``
    Seconds per training iteration of ``supervised``, ``mean-teacher``, ``cps`` and ``barl``
    with the same network, patch and batch (the trainer's ``train_step`` timed in memory;
    ``--warmup`` steps dropped, then the median of ``--iterations``). Reported as ratios
    (BARL's overhead over CPS and over supervised).
``inference``
    Sliding-window prediction of one volume: :func:`barl_core.inference.predict.predict_volume`
    (both branches, class map and disagreement map) against MONAI's
    ``sliding_window_inference`` running the same two-branch network (mean of the branches'
    softmax), with the same window, overlap and Gaussian weighting; median of ``--repeats``.
``memory``
    Peak resident memory of predicting a ``--size``\\ ^3 CBCT phantom with its disagreement
    map, in a fresh child process (so nothing else inflates the peak; the phantom is
    rendered by another child and handed over as a ``.npy``), relative to the volume's own
    float32 size.
``gui``
    The longest event-loop stall of a Qt application (a 10 ms ``QTimer`` heartbeat, which
    also drains the job's progress queue as the plugin does) while
    :class:`barl_core.runtime.jobs.TrainJob` trains in a child process; max and p99 gap in ms, with
    the idle loop's gaps as the reference. Skipped with a message when Qt is unavailable.

Example
-------
``python benchmarks/speed.py`` (a few minutes on 2 CPU cores; ``--size 512`` is the default)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # executed as ``python benchmarks/speed.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

__all__ = ["main", "parse_args", "time_training", "time_inference", "measure_memory", "measure_gui",
           "render_table"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
PARTS = ("train", "inference", "memory", "gui")
_SCRIPT = Path(__file__).resolve()
_GUI_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------


def phantom_cases(n: int, shape: Sequence[int], slices: int = 3) -> tuple[dict, dict]:
    """``n`` phantoms (seeds 0..n-1): cases and sparse labels (even cases labelled)."""
    from barl_core.data.phantom import make_phantom

    cases, labels = {}, {}
    for i in range(n):
        vol, lab = make_phantom(shape=tuple(shape), seed=i)
        vol.metadata = {}
        name = f"phantom_{i:03d}"
        cases[name] = common.BenchCase(name=name, image=vol, truth=lab)
        labels[name] = common.sparsify(lab, common.foreground_slices(lab, slices)) if i % 2 == 0 else None
    return cases, labels


def make_model(args: argparse.Namespace, cases: dict, labels: dict, work: Path, patch: Sequence[int]) -> Path:
    """A BARL checkpoint whose patch (the default inference window) is ``patch``.

    Its weights come from one training iteration: speed and memory do not depend on them.
    """
    from barl_core.data.phantom import PHANTOM_CLASSES

    cfg = common.build_train_config(
        method="barl", iterations=1, patch=patch, base_channels=args.base_channels,
        num_classes=len(PHANTOM_CLASSES), seed=0, batch_labeled=1, batch_unlabeled=1,
        device=args.device, class_names=PHANTOM_CLASSES, num_threads=args.threads)
    img_dir, lab_dir = common.materialise(cases, labels, work / "model_data")
    path, _ = common.train_model(cfg, img_dir, lab_dir, work / "model_run")
    return path


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def time_training(args: argparse.Namespace, cases: dict, labels: dict, work: Path) -> dict:
    """Median seconds per iteration per method, and the ratios between them."""
    from barl_core.data.phantom import PHANTOM_CLASSES

    out: dict = {"patch_zyx": list(args.patch), "base_channels": args.base_channels,
                 "batch_labeled": args.batch_labeled, "batch_unlabeled": args.batch_unlabeled,
                 "warmup": args.warmup, "timed_iterations": args.iterations, "methods": {}}
    for m in args.methods:
        cfg = common.build_train_config(
            method=m, iterations=args.warmup + args.iterations, patch=args.patch,
            base_channels=args.base_channels, num_classes=len(PHANTOM_CLASSES), seed=0,
            batch_labeled=args.batch_labeled, batch_unlabeled=args.batch_unlabeled,
            device=args.device, class_names=PHANTOM_CLASSES, num_threads=args.threads)
        times = common.iteration_times(cfg, cases, labels, work / f"train_{m}")
        kept = times[args.warmup:]
        out["methods"][m] = {
            "median_s": common.robust_iteration_time(times, warmup=args.warmup),
            "p90_s": float(np.percentile(kept, 90)),
            "min_s": float(np.min(kept)),
            "times_s": [round(t, 5) for t in times],
        }
        print(f"[speed] train {m}: {out['methods'][m]['median_s']:.4f} s/iteration", flush=True)
    med = {m: v["median_s"] for m, v in out["methods"].items()}
    ratios = {}
    for a, b in (("barl", "supervised"), ("barl", "cps"), ("cps", "supervised"), ("barl", "mean-teacher")):
        if a in med and b in med:
            ratios[f"{a}/{b}"] = med[a] / med[b]
    out["ratios"] = ratios
    return out


def _monai_predictor(network):
    """MONAI predictor: the mean of both branches' finest softmax (what barl_core averages)."""
    import torch

    def predict(x):
        logits = network.forward_logits(x)
        if isinstance(logits, tuple):
            return (torch.softmax(logits[0], 1) + torch.softmax(logits[1], 1)) / 2
        return torch.softmax(logits, 1)

    return predict


def time_inference(args: argparse.Namespace, model_path: Path, volume) -> dict:
    """barl_core's sliding window vs MONAI's, same network, window, overlap, Gaussian mode."""
    import torch
    from monai.inferers import sliding_window_inference

    from barl_core.data.dataset import compute_norm_stats, normalize
    from barl_core.inference.predict import load_model, predict_volume
    from barl_core.training.checkpoint import build_model, load_checkpoint

    ckpt = load_checkpoint(model_path)
    window = tuple(int(s) for s in ckpt["patch_size"])
    overlap = float(args.overlap)
    loaded = load_model(model_path, device=args.device)
    predict_kwargs = _predict_kwargs(overlap, args.sw_batch)

    def run_barl():
        return predict_volume(loaded, volume, **predict_kwargs)

    network = build_model(ckpt).eval()
    predictor = _monai_predictor(network)

    def run_monai():
        stats = compute_norm_stats(volume.array)
        x = torch.from_numpy(normalize(volume.array, stats))[None, None]
        with torch.inference_mode():
            prob = sliding_window_inference(x, roi_size=window, sw_batch_size=args.sw_batch,
                                            predictor=predictor, overlap=overlap, mode="gaussian")
        return prob.argmax(1)[0].to(torch.uint8).numpy()

    out = {"volume_zyx": list(volume.shape), "window_zyx": list(window), "overlap": overlap,
           "sw_batch": args.sw_batch, "mode": "gaussian", "repeats": args.repeats,
           "barl_core_kwargs": {k: v for k, v in predict_kwargs.items()}}
    for name, fn in (("barl_core", run_barl), ("monai", run_monai)):
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": float(np.median(times)), "times_s": [round(t, 4) for t in times]}
        print(f"[speed] inference {name}: {out[name]['median_s']:.3f} s", flush=True)
    out["ratio_barl_core/monai"] = out["barl_core"]["median_s"] / out["monai"]["median_s"]
    out["note"] = ("barl_core also computes the disagreement map (Jensen-Shannon between the branches) "
                   "and maps the result back to the input grid; MONAI computes the averaged softmax only.")
    return out


def _predict_kwargs(overlap: float, sw_batch: int) -> dict:
    """Keyword arguments of :func:`barl_core.inference.predict.predict_volume` for both parts."""
    return {"overlap": overlap, "sw_batch_size": sw_batch}


def parse_size(text: str) -> tuple[int, int, int]:
    """``512`` (a cube) or ``600x800x800`` (z x y x)."""
    parts = [int(v) for v in text.lower().split("x")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: give N or ZxYxX")
    return tuple(parts)  # type: ignore[return-value]


def measure_memory(args: argparse.Namespace, model_path: Path, work: Path) -> dict:
    """Peak RSS of clean children predicting phantoms of ``--sizes``, relative to float32 size."""
    out: dict = {"window_zyx": list(args.window), "overlap": args.memory_overlap, "volumes": []}
    for size in args.sizes:
        out["volumes"].append(_measure_one(args, model_path, work, size))
    return out


def _measure_one(args: argparse.Namespace, model_path: Path, work: Path, size: Sequence[int]) -> dict:
    label = "x".join(map(str, size))
    npy = work / f"phantom_{label}.npy"
    env = _child_env(args)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(_SCRIPT), "--_phantom-child", "--sizes", label, "--_npy", str(npy)],
                   check=True, env=env)
    render_s = time.perf_counter() - t0
    res_path = work / "memory.json"
    proc = subprocess.run([sys.executable, str(_SCRIPT), "--_memory-child", "--_model", str(model_path),
                           "--_npy", str(npy), "--_json", str(res_path), "--device", args.device,
                           "--overlap", str(args.memory_overlap), "--sw-batch", str(args.sw_batch),
                           "--window", *map(str, args.window)],
                          env=env)
    npy.unlink(missing_ok=True)
    if proc.returncode != 0:
        return {"error": f"the memory child failed with exit code {proc.returncode}", "size_zyx": list(size)}
    res = json.loads(res_path.read_text())
    f32 = res["voxels"] * 4
    res["float32_bytes"] = f32
    res["phantom_render_s"] = round(render_s, 1)
    res["peak_over_float32"] = res["peak_rss_bytes"] / f32
    res["peak_above_model_over_float32"] = (res["peak_rss_bytes"] - res["rss_after_model_bytes"]) / f32
    res["within_estimate"] = res["peak_rss_bytes"] - res["rss_with_volume_bytes"] <= (
        res["estimate_bytes"] - res["input_bytes"])
    print(f"[speed] memory {label}: peak {res['peak_rss_bytes'] / 2**20:.0f} MiB = "
          f"{res['peak_above_model_over_float32']:.2f} x the float32 volume above the loaded model "
          f"(estimate {res['estimate_bytes'] / 2**20:.0f} MiB, "
          f"{'within' if res['within_estimate'] else 'ABOVE'} it)", flush=True)
    return res


def _proc_status(key: str) -> int | None:
    """A ``/proc/self/status`` field in bytes (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":")), None)
    except OSError:
        return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _memory_child(args: argparse.Namespace) -> int:
    """Predict one phantom and record the peak resident memory the prediction added.

    The peak is the kernel's VmHWM after resetting it just before the prediction:
    ``ru_maxrss`` would not do, it keeps the parent's peak across fork+exec.
    """
    import threading

    import psutil

    from barl_core.inference.predict import load_model, predict_volume, prediction_memory
    from barl_core.io.volume import Volume

    proc = psutil.Process()
    rss_imports = proc.memory_info().rss
    model = load_model(args._model, device=args.device)
    kwargs = {**_predict_kwargs(args.overlap, args.sw_batch), "window": tuple(args.window)}
    # one small prediction first: torch's one-time allocations (kernels, thread pools) belong
    # to the process, not to the volume, so the baseline is taken after it
    warm = np.load(args._npy, mmap_mode="r")[:64, :64, :64].astype(np.float32)
    predict_volume(model, Volume(np.ascontiguousarray(warm)), **kwargs)
    del warm
    rss_model = proc.memory_info().rss
    arr = np.load(args._npy)
    meta = json.loads(Path(str(args._npy) + ".json").read_text())
    volume = Volume(arr, spacing=tuple(meta["spacing"]))
    rss_volume = proc.memory_info().rss
    hwm = _reset_peak()
    peak = [rss_volume]
    stop = threading.Event()

    def sample():  # fallback where VmHWM cannot be reset; also a cross-check
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    pred = predict_volume(model, volume, **kwargs)
    seconds = time.perf_counter() - t0
    stop.set()
    th.join()
    vm_hwm = _proc_status("VmHWM") if hwm else None
    est = prediction_memory(model, volume, window=tuple(args.window), sw_batch_size=args.sw_batch)
    res = {
        "size_zyx": list(arr.shape), "voxels": int(arr.size), "input_dtype": str(arr.dtype),
        "input_bytes": int(arr.nbytes), "window_zyx": list(args.window), "overlap": args.overlap,
        "num_classes": model.num_classes, "base_channels": model.base_channels,
        "labels_dtype": str(pred.labels.dtype), "disagreement_dtype": str(pred.disagreement.dtype),
        "rss_after_imports_bytes": rss_imports, "rss_after_model_bytes": rss_model,
        "rss_with_volume_bytes": rss_volume, "peak_rss_sampled_bytes": peak[0],
        "peak_rss_bytes": max(vm_hwm or 0, peak[0]), "peak_source": "VmHWM" if vm_hwm else "sampled",
        "estimate_bytes": int(est), "predict_seconds": round(seconds, 2),
    }
    Path(args._json).write_text(json.dumps(res, indent=1))
    return 0


def _phantom_child(args: argparse.Namespace) -> int:
    from barl_core.data.phantom import make_phantom

    vol, _ = make_phantom(shape=tuple(args.sizes[0]), spacing=(0.3, 0.3, 0.3), seed=0)
    np.save(args._npy, np.ascontiguousarray(vol.array))
    Path(str(args._npy) + ".json").write_text(json.dumps({"spacing": list(vol.spacing)}))
    return 0


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
    env = _child_env(args)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    proc = subprocess.run([sys.executable, str(_SCRIPT), "--_gui-child", "--_config", str(cfg_path),
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


def _gui_child(args: argparse.Namespace) -> int:
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


def _child_env(args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    root = str(common.REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def render_table(data: dict) -> str:
    """Markdown tables of whatever parts the results hold."""
    out = []
    tr = data.get("train")
    if tr:
        sup = tr["methods"].get("supervised", {}).get("median_s")
        rows = [[m, f"{v['median_s'] * 1000:.1f}", f"{v['median_s'] / sup:.2f}" if sup else "n/a"]
                for m, v in tr["methods"].items()]
        out.append(f"### Training iteration time (patch {'x'.join(map(str, tr['patch_zyx']))}, base "
                   f"{tr['base_channels']}, batch {tr['batch_labeled']}+{tr['batch_unlabeled']})\n\n"
                   + common.markdown_table(["method", "ms / iteration (median)", "x supervised"], rows))
        if tr.get("ratios"):
            out.append(common.markdown_table(["ratio", "value"], [[k, f"{v:.2f}"] for k, v in tr["ratios"].items()]))
    inf = data.get("inference")
    if inf and "barl_core" in inf:
        rows = [[k, f"{inf[k]['median_s']:.3f}"] for k in ("barl_core", "monai")]
        rows.append(["barl_core / monai", f"{inf['ratio_barl_core/monai']:.2f}"])
        out.append(f"### Sliding-window inference ({'x'.join(map(str, inf['volume_zyx']))} volume, window "
                   f"{'x'.join(map(str, inf['window_zyx']))}, overlap {inf['overlap']}, gaussian)\n\n"
                   + common.markdown_table(["implementation", "seconds (median)"], rows))
    mem = data.get("memory")
    if mem and mem.get("volumes"):
        rows = []
        for v in mem["volumes"]:
            if "error" in v:
                rows.append(["x".join(map(str, v["size_zyx"])), v["error"], "", "", "", "", ""])
                continue
            above = v["peak_rss_bytes"] - v["rss_with_volume_bytes"]
            rows.append(["x".join(map(str, v["size_zyx"])), f"{v['float32_bytes'] / 2**20:.0f}",
                         f"{v['peak_rss_bytes'] / 2**20:.0f}", f"{v['peak_above_model_over_float32']:.2f}",
                         f"{above / 2**20:.0f}", f"{(v['estimate_bytes'] - v['input_bytes']) / 2**20:.0f}",
                         f"{v['predict_seconds']:.0f}"])
        v0 = next((v for v in mem["volumes"] if "error" not in v), {})
        out.append(f"### Peak memory, predicting CBCT phantoms with disagreement (window "
                   f"{'x'.join(map(str, mem['window_zyx']))}, overlap {mem['overlap']}, "
                   f"{v0.get('num_classes', '?')} classes, base width {v0.get('base_channels', '?')}, "
                   f"peak from {v0.get('peak_source', '?')})\n\n"
                   + common.markdown_table(
                       ["volume (z x y x)", "float32 MiB", "peak RSS MiB", "(peak - model process) / float32",
                        "added by prediction MiB", "estimate of it MiB", "seconds"], rows))
    elif mem:
        out.append(f"### Peak memory\n\n{mem.get('error', 'not measured')}")
    gui = data.get("gui")
    if gui and "training" in gui:
        rows = [[phase, str(gui[phase]["ticks"]), f"{gui[phase]['median_gap_ms']:.1f}",
                 f"{gui[phase]['p99_gap_ms']:.1f}", f"{gui[phase]['max_gap_ms']:.1f}"]
                for phase in ("idle", "training")]
        out.append(f"### GUI event loop (10 ms heartbeat, Qt {gui['qt_platform']}), training job: "
                   f"{gui['job_status']}\n\n"
                   + common.markdown_table(["phase", "heartbeats", "median gap ms", "p99 gap ms", "max gap ms"], rows))
    elif gui:
        out.append(f"### GUI event loop\n\nskipped: {gui.get('skipped') or gui.get('error')}")
    return "\n\n".join(out)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = data.get("train")
    if not tr:
        return
    methods = list(tr["methods"])
    vals = [tr["methods"][m]["median_s"] * 1000 for m in methods]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    bars = ax.bar(methods, vals, color=[f"C{i}" for i in range(len(methods))])
    for b, v in zip(bars, vals, strict=False):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("ms per training iteration (median)")
    ax.set_title(f"patch {'x'.join(map(str, tr['patch_zyx']))}, base {tr['base_channels']}, "
                 f"batch {tr['batch_labeled']}+{tr['batch_unlabeled']}")
    common.save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/speed.py",
        description="Speed and memory: training iteration time per method, barl_core vs MONAI "
        "sliding window, peak memory of a large prediction, GUI event-loop stalls during training.",
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--methods", default=",".join(METHODS), help="methods timed in the train part")
    common.add_model_arguments(p, patch_help="training patch (default 24 32 24, as label_efficiency)",
                               base_help="network width (default 8)", batches=True)
    p.add_argument("--warmup", type=int, default=None, help="iterations dropped (default 3)")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations per method (default 20)")
    p.add_argument("--window", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="inference window for the inference and memory parts (default 64 64 64)")
    p.add_argument("--infer-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="phantom volume of the inference comparison (default 128 160 160)")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (both implementations)")
    p.add_argument("--sw-batch", type=int, default=1, help="windows per forward pass (both implementations)")
    p.add_argument("--repeats", type=int, default=None, help="timed inference repeats (default 3)")
    p.add_argument("--sizes", type=lambda t: [parse_size(v) for v in t.split(",") if v.strip()], default=None,
                   help="memory part: phantom sizes, N (a cube) or ZxYxX, comma-separated (default 512)")
    p.add_argument("--memory-overlap", type=float, default=0.0,
                   help="overlap of the memory part (default 0: memory does not depend on it, time does)")
    p.add_argument("--gui-iterations", type=int, default=None, help="training iterations during the GUI part (default 40)")
    common.add_device_arguments(p)
    common.add_output_arguments(p, "speed")
    # hidden: the child processes of the memory and GUI parts
    for hidden in ("--_memory-child", "--_phantom-child", "--_gui-child"):
        p.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--_model", "--_npy", "--_json", "--_config", "--_images", "--_labels", "--_out"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    smoke = args.smoke
    args.patch = tuple(args.patch or ((16, 16, 16) if smoke else (24, 32, 24)))
    args.base_channels = args.base_channels or (4 if smoke else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 3)
    args.iterations = args.iterations or (2 if smoke else 20)
    args.window = tuple(args.window or ((16, 16, 16) if smoke else (64, 64, 64)))
    args.infer_size = tuple(args.infer_size or ((24, 32, 32) if smoke else (128, 160, 160)))
    args.repeats = args.repeats or (1 if smoke else 3)
    args.sizes = args.sizes or [(32, 32, 32) if smoke else (512, 512, 512)]
    args.gui_iterations = args.gui_iterations or (3 if smoke else 40)
    if smoke:
        args.batch_labeled, args.batch_unlabeled = 1, 1
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.methods = [s.strip() for s in args.methods.split(",") if s.strip()]
    bad = sorted(set(args.parts) - set(PARTS)) + sorted(set(args.methods) - set(METHODS))
    if bad:
        p.error(f"unknown part(s)/method(s): {', '.join(bad)}")
    return args


def run(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if not k.startswith("_") and k not in ("out", "plot", "work_dir")}
    # a run of some parts keeps the others' results (each part records its own settings)
    keep = set(args.parts) != set(PARTS)
    store = common.ResultsStore.open(args.out, "speed", resume=keep, config=config)
    for part in PARTS:
        if part in args.parts:
            store.data.pop(part, None)
    t_start = time.perf_counter()
    with common.temp_work_dir("barl_speed_", args.work_dir) as tmp:
        work = Path(tmp)
        train_shape = tuple(max(int(p) + 8, 32) for p in args.patch)
        cases, labels = phantom_cases(4, train_shape)
        if "train" in args.parts:
            store.set("train", time_training(args, cases, labels, work))
        model_path = None
        if "inference" in args.parts or "memory" in args.parts:
            model_path = make_model(args, cases, labels, work, args.window)
        if "inference" in args.parts:
            from barl_core.data.phantom import make_phantom

            vol, _ = make_phantom(shape=args.infer_size, seed=7)
            vol.metadata = {}
            store.set("inference", time_inference(args, model_path, vol))
        if "memory" in args.parts:
            store.set("memory", measure_memory(args, model_path, work))
        if "gui" in args.parts:
            store.set("gui", measure_gui(args, cases, labels, work))
    store.save(finished=True)
    print()
    print(render_table(store.data))
    print(f"\n[speed] results in {args.out}; took {time.perf_counter() - t_start:.0f} s")
    if args.plot and "train" in store.data:
        plot(store.data, args.plot)
        print(f"[speed] plot: {args.plot}")
    return store.data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._memory_child:
        return _memory_child(args)
    if args._phantom_child:
        return _phantom_child(args)
    if args._gui_child:
        return _gui_child(args)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
