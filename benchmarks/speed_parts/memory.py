"""Peak resident memory of predicting large phantoms, each in a clean child process.

The parent renders nothing itself: one child renders the phantom to a ``.npy``, another loads
the model, predicts and records its own peak (:func:`memory_child`), so nothing else inflates it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .children import SCRIPT, child_env

__all__ = ["measure_large", "measure_memory", "memory_child", "phantom_child"]


def measure_large(args: argparse.Namespace, model_path: Path, work: Path) -> dict:
    """512^3 (``--large-size``) at the working spacing ``--large-spacing``, overlap ``--overlap``."""
    res = _measure_one(args, model_path, work, args.large_size, overlap=args.overlap, spacing=args.large_spacing)
    res["working_spacing"] = args.large_spacing
    return res


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
    env = child_env(args)
    t0 = time.perf_counter()
    if not npy.is_file():  # the large and memory parts share one rendering (the work dir is temporary)
        subprocess.run([sys.executable, str(SCRIPT), "--_phantom-child", "--sizes", label, "--_npy", str(npy)],
                       check=True, env=env)
    render_s = time.perf_counter() - t0
    res_path = work / "memory.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--_memory-child", "--_model", str(model_path),
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


def memory_child(args: argparse.Namespace) -> int:
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


def phantom_child(args: argparse.Namespace) -> int:
    from barl_core.data.phantom import make_phantom

    vol, _ = make_phantom(shape=tuple(args.sizes[0]), spacing=(0.3, 0.3, 0.3), seed=0)
    np.save(args._npy, np.ascontiguousarray(vol.array))
    Path(str(args._npy) + ".json").write_text(json.dumps({"spacing": list(vol.spacing)}))
    return 0
