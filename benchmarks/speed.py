"""Speed and memory, measured in one run so the ratios compare like with like.

Seven measurements (each can be selected with ``--parts``):

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
``options``
    One forward pass of the two-branch network on one window under each inference option
    (``no_grad``, ``inference_mode``, ``channels_last_3d``, bfloat16 autocast, both,
    ``torch.compile``), interleaved rounds, with the largest softmax change against float32:
    what ``barl_core`` keeps is what wins here.
``interactive``
    What the radiologist waits for on the app's phantom: a model trained briefly on it, then
    the current slice's proposal (:func:`~barl_core.inference.predict.predict_slab`), the
    whole case, the whole case in float32, and a prediction job in a child process from start
    to written files (what the plugin runs); label agreement of slab and bfloat16 with the
    float32 whole-volume pass, and foreground Dice against the phantom's truth.
``large``
    A 512^3 CBCT phantom (0.3 mm) predicted at the planned working resolution
    (``--large-spacing``), with its disagreement, in a clean child process: seconds and peak
    memory (as ``memory``).
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

__all__ = ["main", "parse_args", "time_training", "time_inference", "time_options", "time_interactive",
           "measure_large", "measure_memory", "measure_gui", "render_table"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
PARTS = ("train", "inference", "options", "interactive", "large", "memory", "gui")
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


def _monai_predictor(network, low):
    """MONAI predictor: the mean of both branches' finest softmax (what barl_core averages),
    under the same autocast dtype as barl_core (None: float32).
    """
    import contextlib

    import torch

    def predict(x):
        ctx = torch.autocast(x.device.type, dtype=low) if low is not None else contextlib.nullcontext()
        with ctx:
            logits = network.forward_logits(x)
        if isinstance(logits, tuple):
            return (torch.softmax(logits[0].float(), 1) + torch.softmax(logits[1].float(), 1)) / 2
        return torch.softmax(logits.float(), 1)

    return predict


def _precisions(device: str) -> list[str]:
    """float32, and bfloat16 where the CPU has it natively (what ``precision="auto"`` picks)."""
    import torch

    from barl_core.inference.model import autocast_dtype

    low = autocast_dtype("auto", torch.device(device))
    return ["float32"] + ([str(low).replace("torch.", "")] if low is not None else [])


def _interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, timed in alternating rounds after one warm-up each, so
    that a shared machine's load drifts over all of them alike.
    """
    for fn in fns.values():
        fn()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": float(np.median(v)), "times_s": [round(x, 4) for x in v]} for k, v in times.items()}


def time_inference(args: argparse.Namespace, model_path: Path, volume) -> dict:
    """barl_core's sliding window vs MONAI's, same network, window, overlap, Gaussian mode and
    network precision; the two alternate in every round.
    """
    import torch
    from monai.inferers import sliding_window_inference

    from barl_core.data.normalization import compute_norm_stats, normalize
    from barl_core.inference.model import autocast_dtype, load_model
    from barl_core.inference.predict import predict_volume
    from barl_core.training.checkpoint import build_model, load_checkpoint

    ckpt = load_checkpoint(model_path)
    window = tuple(int(s) for s in ckpt["patch_size"])
    overlap = float(args.overlap)
    loaded = load_model(model_path, device=args.device)
    network = build_model(ckpt).to(args.device).eval()
    out = {"volume_zyx": list(volume.shape), "window_zyx": list(window), "overlap": overlap,
           "sw_batch": args.sw_batch, "mode": "gaussian", "repeats": args.repeats, "precisions": {}}
    for prec in _precisions(args.device):
        low = autocast_dtype(prec, torch.device(args.device))
        predictor = _monai_predictor(network, low)

        def run_barl(prec=prec):
            return predict_volume(loaded, volume, overlap=overlap, sw_batch_size=args.sw_batch, precision=prec)

        def run_monai(predictor=predictor):
            stats = compute_norm_stats(volume.array)
            x = torch.from_numpy(normalize(volume.array, stats))[None, None].to(args.device)
            with torch.inference_mode():
                prob = sliding_window_inference(x, roi_size=window, sw_batch_size=args.sw_batch,
                                                predictor=predictor, overlap=overlap, mode="gaussian")
            return prob.argmax(1)[0].to(torch.uint8).cpu().numpy()

        res = _interleaved({"barl_core": run_barl, "monai": run_monai}, args.repeats)
        res["ratio_barl_core/monai"] = res["barl_core"]["median_s"] / res["monai"]["median_s"]
        out["precisions"][prec] = res
        print(f"[speed] inference {prec}: barl_core {res['barl_core']['median_s']:.2f} s, monai "
              f"{res['monai']['median_s']:.2f} s, ratio {res['ratio_barl_core/monai']:.2f}", flush=True)
    out["note"] = ("barl_core also computes the disagreement map (Jensen-Shannon between the branches) "
                   "and maps the result back to the input grid; MONAI computes the averaged softmax only.")
    return out


def time_options(args: argparse.Namespace, model_path: Path) -> dict:
    """One window's forward pass under each inference option, interleaved; softmax change vs float32."""
    import copy

    import torch

    from barl_core.training.checkpoint import build_model, load_checkpoint

    ckpt = load_checkpoint(model_path)
    net = build_model(ckpt).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, *args.window)).astype(np.float32))
    cl_net = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)

    def softmax(outs):
        return torch.stack([o.float().softmax(1) for o in outs])

    def bf16(fn):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn()
        return run

    def no_grad():
        with torch.no_grad():
            return net.forward_logits(x)

    def inference_mode():
        with torch.inference_mode():
            return net.forward_logits(x)

    def channels_last():
        with torch.inference_mode():
            return cl_net.forward_logits(x_cl)

    fns = {"float32, no_grad": no_grad, "float32, inference_mode": inference_mode,
           "float32, channels_last_3d": channels_last}
    if args.device == "cpu":
        fns["bfloat16 autocast"] = bf16(inference_mode)
        fns["bfloat16 autocast, channels_last_3d"] = bf16(channels_last)
    out: dict = {"window_zyx": list(args.window), "base_channels": args.base_channels, "options": {}}
    if args.compile:
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(net.forward_logits)
            with torch.inference_mode():
                compiled(x)
            fns["float32, torch.compile"] = lambda: compiled(x)
            out["compile_s"] = round(time.perf_counter() - t0, 1)
        except Exception as exc:  # noqa: BLE001 - report why compile is unavailable, keep the rest
            out["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    with torch.inference_mode():
        ref = softmax(inference_mode())
        timed = _interleaved(fns, args.option_repeats)
        for name, fn in fns.items():
            diff = float((softmax(fn()) - ref).abs().max())
            out["options"][name] = {**timed[name], "max_softmax_change": diff,
                                    "speedup": timed["float32, no_grad"]["median_s"] / timed[name]["median_s"]}
            print(f"[speed] options {name}: {timed[name]['median_s'] * 1000:.0f} ms "
                  f"(x{out['options'][name]['speedup']:.2f}), max softmax change {diff:.4f}", flush=True)
    return out


def _foreground_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    from barl_core.evaluation.metrics import dice

    return float(np.mean([dice(pred == k, truth == k) for k in range(1, num_classes)]))


def time_interactive(args: argparse.Namespace, work: Path) -> dict:
    """What the app waits for on its phantom after training: current slice, whole case, job."""
    from barl_core.data.phantom import PHANTOM_CLASSES, make_phantom
    from barl_core.inference.model import load_model
    from barl_core.inference.predict import predict_slab, predict_volume
    from barl_core.io.volume import write_volume
    from barl_core.runtime.jobs import PredictJob

    shape = tuple(args.app_size)
    cases, labels = phantom_cases(4, shape)
    cfg = common.build_train_config(
        method="barl", iterations=args.app_iterations, patch=args.app_patch, base_channels=args.base_channels,
        num_classes=len(PHANTOM_CLASSES), seed=0, batch_labeled=1, batch_unlabeled=1, device=args.device,
        class_names=PHANTOM_CLASSES, num_threads=args.threads)
    img_dir, lab_dir = common.materialise(cases, labels, work / "app_data")
    model_path, train_s = common.train_model(cfg, img_dir, lab_dir, work / "app_run")
    model = load_model(model_path, device=args.device)
    vol, truth = make_phantom(shape=shape, seed=11)
    vol.metadata = {}
    z = shape[0] // 2
    out: dict = {"volume_zyx": list(shape), "patch_zyx": list(args.app_patch), "base_channels": args.base_channels,
                 "train_iterations": args.app_iterations, "train_s": round(train_s, 1), "slice": z,
                 "overlap": args.overlap}
    predict_slab(model, vol, (z, z + 1), overlap=args.overlap)  # warm-up: torch's one-time costs
    t0 = time.perf_counter()
    slab = predict_slab(model, vol, (z, z + 1), overlap=args.overlap)
    out["slice_s"] = time.perf_counter() - t0
    # where the time goes: the network's forward passes against the whole prediction
    spent = [0.0]
    forward = model.branch_logits

    def timed_forward(x):
        t = time.perf_counter()
        res = forward(x)
        spent[0] += time.perf_counter() - t
        return res

    model.branch_logits = timed_forward  # instance attribute: shadows the method for these two runs
    t0 = time.perf_counter()
    whole = predict_volume(model, vol, overlap=args.overlap)
    out["whole_s"] = time.perf_counter() - t0
    out["network_fraction"] = spent[0] / out["whole_s"]
    spent[0] = 0.0
    t0 = time.perf_counter()
    whole32 = predict_volume(model, vol, overlap=args.overlap, precision="float32")
    out["whole_float32_s"] = time.perf_counter() - t0
    out["network_fraction_float32"] = spent[0] / out["whole_float32_s"]
    del model.branch_logits
    # fewer, larger windows: the whole case as one window (one forward pass, no overlap)
    t0 = time.perf_counter()
    one = predict_volume(model, vol, window=shape, overlap=0.0)
    out["whole_one_window_s"] = time.perf_counter() - t0
    out["one_window_label_agreement"] = float((one.labels == whole.labels).mean())
    out["dice_one_window"] = _foreground_dice(one.labels, truth, model.num_classes)
    out["slice_label_agreement"] = float((slab.labels[0] == whole.labels[z]).mean())
    out["auto_vs_float32_label_agreement"] = float((whole.labels == whole32.labels).mean())
    out["dice_auto"] = _foreground_dice(whole.labels, truth, model.num_classes)
    out["dice_float32"] = _foreground_dice(whole32.labels, truth, model.num_classes)
    image = write_volume(vol, work / "app_case" / "case.nii.gz")
    t0 = time.perf_counter()
    handle = PredictJob.start(model_path, [image], work / "app_pred", device=args.device, num_threads=args.threads)
    final = None
    while final is None:
        for update in handle.poll():
            if update.kind in ("done", "error", "cancelled"):
                final = update
        time.sleep(0.05)
    handle.wait(30)
    out["job_s"] = time.perf_counter() - t0
    out["job_status"] = final.kind
    print(f"[speed] interactive: slice {out['slice_s']:.1f} s, whole {out['whole_s']:.1f} s "
          f"(float32 {out['whole_float32_s']:.1f} s), job {out['job_s']:.1f} s; slice agreement "
          f"{out['slice_label_agreement']:.4f}, auto/float32 agreement {out['auto_vs_float32_label_agreement']:.4f}",
          flush=True)
    return out


def measure_large(args: argparse.Namespace, model_path: Path, work: Path) -> dict:
    """512^3 (``--large-size``) at the working spacing ``--large-spacing``, overlap ``--overlap``."""
    res = _measure_one(args, model_path, work, args.large_size, overlap=args.overlap, spacing=args.large_spacing)
    res["working_spacing"] = args.large_spacing
    return res


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


def _measure_one(args: argparse.Namespace, model_path: Path, work: Path, size: Sequence[int], *,
                 overlap: float | None = None, spacing: float | None = None) -> dict:
    label = "x".join(map(str, size))
    overlap = args.memory_overlap if overlap is None else overlap
    npy = work / f"phantom_{label}.npy"
    env = _child_env(args)
    t0 = time.perf_counter()
    if not npy.is_file():  # the large and memory parts share one rendering (the work dir is temporary)
        subprocess.run([sys.executable, str(_SCRIPT), "--_phantom-child", "--sizes", label, "--_npy", str(npy)],
                       check=True, env=env)
    render_s = time.perf_counter() - t0
    res_path = work / "memory.json"
    proc = subprocess.run([sys.executable, str(_SCRIPT), "--_memory-child", "--_model", str(model_path),
                           "--_npy", str(npy), "--_json", str(res_path), "--device", args.device,
                           "--overlap", str(overlap), "--sw-batch", str(args.sw_batch),
                           "--window", *map(str, args.window)]
                          + (["--_spacing", str(spacing)] if spacing else []),
                          env=env)
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

    from barl_core.inference.model import load_model
    from barl_core.inference.predict import predict_volume, prediction_memory
    from barl_core.io.volume import Volume

    proc = psutil.Process()
    rss_imports = proc.memory_info().rss
    model = load_model(args._model, device=args.device)
    if args._spacing:  # predict at a planned working resolution (speed does not depend on weights)
        model.metadata["target_spacing"] = [float(args._spacing)] * 3
    kwargs = {"overlap": args.overlap, "sw_batch_size": args.sw_batch, "window": tuple(args.window)}
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
        "target_spacing": model.target_spacing, "precision": "auto",
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
    if inf and "precisions" in inf:
        rows = [[prec, f"{r['barl_core']['median_s']:.2f}", f"{r['monai']['median_s']:.2f}",
                 f"{r['ratio_barl_core/monai']:.2f}", f"{1 / r['ratio_barl_core/monai']:.2f}"]
                for prec, r in inf["precisions"].items()]
        out.append(f"### Sliding-window inference ({'x'.join(map(str, inf['volume_zyx']))} volume, window "
                   f"{'x'.join(map(str, inf['window_zyx']))}, overlap {inf['overlap']}, gaussian, "
                   f"{inf['repeats']} interleaved rounds)\n\n"
                   + common.markdown_table(["network precision (both)", "barl_core s (median)", "MONAI s (median)",
                                            "time ours / MONAI", "speed ours / MONAI (goal >= 1.0)"], rows))
    elif inf and "barl_core" in inf:  # results of the older format
        rows = [[k, f"{inf[k]['median_s']:.3f}"] for k in ("barl_core", "monai")]
        rows.append(["barl_core / monai", f"{inf['ratio_barl_core/monai']:.2f}"])
        out.append(f"### Sliding-window inference ({'x'.join(map(str, inf['volume_zyx']))} volume, window "
                   f"{'x'.join(map(str, inf['window_zyx']))}, overlap {inf['overlap']}, gaussian)\n\n"
                   + common.markdown_table(["implementation", "seconds (median)"], rows))
    opt = data.get("options")
    if opt and opt.get("options"):
        rows = [[k, f"{v['median_s'] * 1000:.0f}", f"{v['speedup']:.2f}", f"{v['max_softmax_change']:.4f}"]
                for k, v in opt["options"].items()]
        note = ""
        if "compile_s" in opt:
            note = f"\n\ntorch.compile took {opt['compile_s']:.0f} s to compile before its first window."
        elif "compile_error" in opt:
            note = f"\n\ntorch.compile failed: {opt['compile_error']}"
        out.append(f"### Inference options, one {'x'.join(map(str, opt['window_zyx']))} window, both branches, base "
                   f"{opt['base_channels']}\n\n"
                   + common.markdown_table(["option", "ms (median)", "speed-up vs no_grad", "max softmax change"],
                                           rows) + note)
    app = data.get("interactive")
    if app and "whole_s" in app:
        rows = [["current slice's proposal (predict_slab)", f"{app['slice_s']:.1f}", "<= 5"],
                ["whole case (predict_volume)", f"{app['whole_s']:.1f}", "<= 20"],
                ["whole case, float32 network", f"{app['whole_float32_s']:.1f}", ""],
                ["whole case as one window (no overlap)", f"{app.get('whole_one_window_s', float('nan')):.1f}", ""],
                ["prediction job, child process start to files written", f"{app['job_s']:.1f}", ""]]
        out.append(f"### The app's phantom ({'x'.join(map(str, app['volume_zyx']))}, window "
                   f"{'x'.join(map(str, app['patch_zyx']))}, base {app['base_channels']}, overlap {app['overlap']}, "
                   f"BARL trained {app['train_iterations']} iterations)\n\n"
                   + common.markdown_table(["what the radiologist waits for", "seconds", "goal s"], rows)
                   + "\n\n" + common.markdown_table(["quality check", "value"], [
                       ["slice from predict_slab = whole-volume pass (voxels)", f"{app['slice_label_agreement']:.4f}"],
                       ["labels, auto precision = float32 (voxels)", f"{app['auto_vs_float32_label_agreement']:.4f}"],
                       ["share of the whole case spent in the network, auto / float32",
                        f"{app.get('network_fraction', float('nan')):.2f} / "
                        f"{app.get('network_fraction_float32', float('nan')):.2f}"],
                       ["foreground Dice vs truth, auto / float32",
                        f"{app['dice_auto']:.3f} / {app['dice_float32']:.3f}"],
                       ["one window = default windows (voxels); its Dice",
                        f"{app.get('one_window_label_agreement', float('nan')):.4f}; "
                        f"{app.get('dice_one_window', float('nan')):.3f}"]]))
    big = data.get("large")
    if big and "predict_seconds" in big:
        f32 = big["float32_bytes"]
        out.append(f"### A {'x'.join(map(str, big['size_zyx']))} CBCT phantom (0.3 mm) at the working spacing "
                   f"{big['working_spacing']} mm (window {'x'.join(map(str, big['window_zyx']))}, overlap "
                   f"{big['overlap']}, base {big['base_channels']})\n\n"
                   + common.markdown_table(["seconds (goal <= 180)", "peak RSS MiB",
                                            "(peak - model process) / float32 (goal <= 2.5)"],
                                           [[f"{big['predict_seconds']:.0f}", f"{big['peak_rss_bytes'] / 2**20:.0f}",
                                             f"{(big['peak_rss_bytes'] - big['rss_after_model_bytes']) / f32:.2f}"]]))
    elif big:
        out.append(f"### Large volume\n\n{big.get('error', 'not measured')}")
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
    p.add_argument("--option-repeats", type=int, default=None, help="options part: timed rounds (default 5)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="options part: leave torch.compile out (its first call compiles for minutes)")
    p.add_argument("--app-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="interactive part: the app's phantom (default 64 96 96)")
    p.add_argument("--app-patch", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="interactive part: training patch = window (default 32 64 64, the quick preset's)")
    p.add_argument("--app-iterations", type=int, default=None, help="interactive part: BARL training iterations (default 40)")
    p.add_argument("--large-size", type=parse_size, default=None, help="large part: phantom size (default 512)")
    p.add_argument("--large-spacing", type=float, default=None,
                   help="large part: planned working spacing in mm of the 0.3 mm phantom (default 0.6)")
    common.add_device_arguments(p)
    common.add_output_arguments(p, "speed")
    # hidden: the child processes of the memory and GUI parts
    for hidden in ("--_memory-child", "--_phantom-child", "--_gui-child"):
        p.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--_model", "--_npy", "--_json", "--_config", "--_images", "--_labels", "--_out", "--_spacing"):
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
    args.option_repeats = args.option_repeats or (1 if smoke else 5)
    args.compile = args.compile and not smoke
    args.app_size = tuple(args.app_size or ((16, 24, 24) if smoke else (64, 96, 96)))
    args.app_patch = tuple(args.app_patch or ((16, 16, 16) if smoke else (32, 64, 64)))
    args.app_iterations = args.app_iterations or (1 if smoke else 40)
    args.large_size = tuple(args.large_size or ((32, 32, 32) if smoke else (512, 512, 512)))
    args.large_spacing = args.large_spacing or 0.6
    if smoke:
        args.batch_labeled, args.batch_unlabeled = 1, 1
    common.parse_parts_and_methods(p, args, PARTS, METHODS)
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
        if {"inference", "options", "large", "memory"} & set(args.parts):
            model_path = make_model(args, cases, labels, work, args.window)
        if "inference" in args.parts:
            from barl_core.data.phantom import make_phantom

            vol, _ = make_phantom(shape=args.infer_size, seed=7)
            vol.metadata = {}
            store.set("inference", time_inference(args, model_path, vol))
        if "options" in args.parts:
            store.set("options", time_options(args, model_path))
        if "interactive" in args.parts:
            store.set("interactive", time_interactive(args, work))
        if "large" in args.parts:
            store.set("large", measure_large(args, model_path, work))
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
