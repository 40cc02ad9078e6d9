"""The ``methods`` and ``predict`` parts: how fast the GPU path trains and predicts.

Iterations per second of every method at the ``full`` preset (AMP on CUDA), and a 512^3
prediction with a ``full``-width two-branch network; each with its peak GPU memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks import common

from .device import is_cuda, peak_mib, reset_peak
from .inputs import full_config, phantom_cases, train_shape

__all__ = ["check_methods", "check_predict"]


def check_methods(args: argparse.Namespace, work: Path) -> dict:
    """Iterations/s and peak GPU memory of every method at the ``full`` preset with AMP."""
    from barl_core.data.phantom import PHANTOM_CLASSES

    cases, labels = phantom_cases(train_shape(args), "p")
    out: dict = {"methods": {}}
    for m in args.methods:
        cfg = full_config(args, m, args.warmup + args.iterations, len(PHANTOM_CLASSES), PHANTOM_CLASSES)
        reset_peak(args.device)
        times = common.iteration_times(cfg, cases, labels, work / f"train_{m}")
        sec = common.robust_iteration_time(times, warmup=args.warmup)
        out["methods"][m] = {"its_per_s": 1.0 / sec, "median_s": sec, "peak_mib": peak_mib(args.device),
                             "amp": bool(cfg.amp and is_cuda(args.device))}
        out.update(patch_zyx=list(cfg.patch_size), batch=[cfg.batch_labeled, cfg.batch_unlabeled],
                   base_channels=cfg.network.base_channels)
        print(f"[gpu_check] {m}: {1 / sec:.2f} it/s", flush=True)
    if "barl" in out["methods"] and "cps" in out["methods"]:
        out["barl/cps_time"] = out["methods"]["barl"]["median_s"] / out["methods"]["cps"]["median_s"]
    return out


def check_predict(args: argparse.Namespace) -> dict:
    """512^3 prediction with a ``full``-width two-branch network: seconds, peak GPU memory."""
    import torch

    from barl_core.data.phantom import make_phantom
    from barl_core.inference.model import LoadedModel
    from barl_core.inference.predict import predict_volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig
    from barl_core.training.config import preset

    full = preset("full")
    width = 4 if args.tiny else full.network.base_channels
    window = (16, 16, 16) if args.tiny else tuple(full.patch_size)
    torch.manual_seed(0)
    net = BiBranchNet(NetworkConfig(num_classes=4, base_channels=width)).eval()
    model = LoadedModel.from_module(net, patch_size=window, device=args.device)
    vol, _ = make_phantom(shape=tuple(args.predict_size), seed=0)
    vol.metadata = {}
    from barl_core.io.volume import Volume

    warm = np.ascontiguousarray(vol.array[: window[0], : window[1], : window[2]])
    predict_volume(model, Volume(warm, spacing=vol.spacing))  # warm-up: kernels, allocator
    reset_peak(args.device)
    t0 = time.perf_counter()
    pred = predict_volume(model, vol, sw_batch_size=args.sw_batch)
    if is_cuda(args.device):
        torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    res = {"size_zyx": list(vol.shape), "window_zyx": list(window), "base_channels": width, "overlap": 0.5,
           "sw_batch": args.sw_batch, "seconds": sec, "peak_mib": peak_mib(args.device),
           "mean_disagreement": float(pred.disagreement.mean(dtype=np.float64))}
    print(f"[gpu_check] predict {'x'.join(map(str, vol.shape))}: {sec:.1f} s", flush=True)
    return res
