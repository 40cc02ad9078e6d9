"""The ``la`` part: a short BARL run on Left Atrium 2018 (UA-MT h5 layout, ``--la-root``).

Skipped, with the reason, when the data is absent or unreadable: the other parts need no data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks import common

from .inputs import full_config

__all__ = ["check_la"]


def check_la(args: argparse.Namespace, work: Path) -> dict:
    """A short BARL run on LA (UA-MT h5): mean supervised loss of the first and last tenth."""
    from benchmarks.la_h5 import LA_CLASS_NAMES, load_la_cases

    if args.la_root is None or not Path(args.la_root).exists():
        return {"skipped": f"no Left Atrium data (--la-root {args.la_root})"}
    try:
        cases, train_names, _ = load_la_cases(args.la_root)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        return {"skipped": f"Left Atrium data unreadable: {exc}"}
    train_names = train_names[: args.la_cases]
    labels = {n: (cases[n].truth if i < max(1, len(train_names) // 5) else None) for i, n in enumerate(train_names)}
    img, lab = common.materialise({n: cases[n] for n in train_names}, labels, work / "la")
    cfg = full_config(args, "barl", args.la_iterations, len(LA_CLASS_NAMES), LA_CLASS_NAMES)
    losses: list[float] = []

    def on_event(ev):  # the supervised term: BARL's total grows while its other terms ramp up
        got = getattr(ev, "losses", None) or {}
        loss = got.get("sup", got.get("loss"))
        if loss is not None:
            losses.append(float(loss))

    from barl_core.training.run import train

    t0 = time.perf_counter()
    train(cfg, img, lab, work / "la_run", callback=on_event)
    n = max(1, len(losses) // 10)
    res = {"cases": len(train_names), "labelled": sum(v is not None for v in labels.values()),
           "iterations": args.la_iterations, "seconds": time.perf_counter() - t0, "patch_zyx": list(cfg.patch_size),
           "loss_first": float(np.mean(losses[:n])) if losses else None,
           "loss_last": float(np.mean(losses[-n:])) if losses else None}
    res["loss_went_down"] = bool(losses) and res["loss_last"] < res["loss_first"]
    print(f"[gpu_check] la: loss {res['loss_first']} -> {res['loss_last']}", flush=True)
    return res
