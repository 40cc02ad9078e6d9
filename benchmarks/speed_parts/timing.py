"""Timed compute: training iterations per method, barl_core's sliding window against MONAI's,
and one window's forward pass under each inference option.

Why together: all three time callables in interleaved rounds, so that a shared machine's load
drifts over every contender alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks import common

__all__ = ["time_training", "time_inference", "time_options"]


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
