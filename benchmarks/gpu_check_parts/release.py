"""The ``release`` part: the device's free memory comes back after a training child ends.

Why a child: :class:`barl_core.runtime.jobs.TrainJob` trains in a child process, as the plugin
does; its CUDA context must go with it, whether the job finishes or is cancelled.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .device import free_bytes
from .inputs import full_config, phantom_data, train_shape

__all__ = ["RELEASE_TOLERANCE", "check_release"]

#: Free device memory may differ from the baseline by this much after a child ends (allocator
#: granularity of other processes on a shared GPU; a leaked CUDA context is ~500 MiB).
RELEASE_TOLERANCE = 128 * 2**20


def _run_job(handle, cancel_after_progress: int | None, timeout_s: float) -> str:
    """Drain a job's updates until it ends (cancelling it after some progress); its final kind."""
    seen, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        for u in handle.poll():
            if u.kind == "progress":
                seen += 1
                if cancel_after_progress is not None and seen >= cancel_after_progress:
                    handle.cancel()
            if u.kind in ("done", "error", "cancelled"):
                handle.wait(60)
                return u.kind if u.kind != "error" else f"error: {u.message}"
        time.sleep(0.05)
    handle.cancel()
    handle.wait(60)
    return "timeout"


def check_release(args: argparse.Namespace, work: Path) -> dict:
    """Free device memory before a training child, after it ends, and after one is cancelled."""
    from barl_core.runtime.jobs import TrainJob

    img, lab, names = phantom_data(args, work, train_shape(args))
    out: dict = {"device": args.device}
    base = free_bytes(args.device)
    out["baseline_free_mib"] = None if base is None else base / 2**20
    cfg = full_config(args, "barl", args.job_iterations, len(names), names)
    out["done_status"] = _run_job(TrainJob.start(cfg, img, lab, work / "job_done"), None, args.job_timeout)
    after = free_bytes(args.device)
    out["after_done_free_mib"] = None if after is None else after / 2**20
    long_cfg = full_config(args, "barl", 10_000, len(names), names)
    out["cancel_status"] = _run_job(TrainJob.start(long_cfg, img, lab, work / "job_cancel"), 2, args.job_timeout)
    after_cancel = free_bytes(args.device)
    out["after_cancel_free_mib"] = None if after_cancel is None else after_cancel / 2**20
    if base is not None:
        out["returned"] = bool(after >= base - RELEASE_TOLERANCE and after_cancel >= base - RELEASE_TOLERANCE)
    else:
        out["returned"] = None  # no device memory to return on the CPU; the statuses say the children ended
    print(f"[gpu_check] release: done={out['done_status']} cancelled={out['cancel_status']} "
          f"returned={out['returned']}", flush=True)
    return out
