"""``barl train``: train BARL (or a baseline) on a folder with sparse labels.

Writes ``RUN_DIR/model.pt``, periodic checkpoints, ``config.json`` and ``metrics.jsonl``.
Ctrl-C stops cleanly at the next iteration with a checkpoint (continue with ``--resume``);
a second Ctrl-C aborts at once.

Multi-GPU: ``torchrun --nproc_per_node=N -m barl_core train ...`` runs this command once per
GPU; rank 0 alone writes the run folder and prints (see ``docs/multi_gpu.md``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from barl_core.errors import CancelledError, TrainingError
from barl_core.training.config import METHODS, PRESETS, TrainConfig, parse_disable, preset
from barl_core.training.distributed import is_main_process
from barl_core.training.planner import PlanRequest, TrainingPlan, make_planner, parse_duration
from barl_core.training.trainer import CancelToken, TrainProgress, train

__all__ = ["register", "run", "build_config", "ProgressBar"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a few labelled slices",
        description="Train BARL (or a baseline) on an MSD-style folder: images plus sparse label "
        "maps where 255 marks voxels nobody annotated.",
    )
    p.add_argument("--images", required=True, type=Path, help="images folder (or dataset root with imagesTr/labelsTr)")
    p.add_argument("--labels", type=Path, help="sparse label maps (default: sibling labelsTr)")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder to write")
    p.add_argument("--method", choices=METHODS, help="training method (default barl)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="quick", help="starting config (default quick: CPU-sized)")
    p.add_argument("--config", type=Path, metavar="JSON", help="a config.json to start from instead of a preset")
    p.add_argument("--iterations", type=int,
                   help="optimiser steps (default: planned from the data and the measured speed, "
                        "up to --max-iterations; validation stops the run at its plateau)")
    p.add_argument("--time-budget", metavar="DURATION",
                   help="plan the run to finish in about this long, e.g. 2m, 90s, 1.5h (times a few "
                        "iterations first, then picks the patch and the iteration count)")
    p.add_argument("--max-iterations", type=int, default=3000,
                   help="upper bound of a planned iteration count (default 3000)")
    p.add_argument("--validate-every", type=int, metavar="N",
                   help="validate on held-out labelled cases every N iterations (0: off; default: planned)")
    p.add_argument("--patience", type=int, metavar="K",
                   help="stop after K validations without improvement (0: never; default: planned)")
    p.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"), help="training patch size")
    p.add_argument("--batch-labeled", type=int, help="labelled patches per iteration")
    p.add_argument("--batch-unlabeled", type=int, help="unlabelled patches per iteration")
    p.add_argument("--disable", help="BARL terms to switch off, e.g. dpr,pcbc (of dpr, pcbc, region, instance)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--classes", help="class names, background first: background,tooth,canal")
    p.add_argument("--target-spacing", type=float, nargs=3, metavar=("Z", "Y", "X"), help="working spacing in mm")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every N iterations")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--init-from", type=Path, metavar="CKPT", help="fine-tune from this model's weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: ``--config`` file or ``--preset``, then the explicit flags."""
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TrainingError(f"{args.config}: cannot read the config: {exc}") from None
        cfg = TrainConfig.from_dict(data)
    else:
        cfg = preset(args.preset)
    changes: dict = {}
    for flag, name in (
        ("method", "method"), ("iterations", "iterations"), ("batch_labeled", "batch_labeled"),
        ("batch_unlabeled", "batch_unlabeled"), ("device", "device"), ("seed", "seed"),
        ("checkpoint_every", "checkpoint_every"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            changes[name] = value
    if args.patch is not None:
        changes["patch_size"] = tuple(args.patch)
    if args.target_spacing is not None:
        changes["target_spacing"] = tuple(args.target_spacing)
    if args.disable is not None:
        changes["disable"] = parse_disable(args.disable)
    validation = {k: v for k, v in (("every", getattr(args, "validate_every", None)),
                                     ("patience", getattr(args, "patience", None))) if v is not None}
    if validation:
        changes["validation"] = replace(cfg.validation, **validation)
    cfg = replace(cfg, **changes)
    if args.classes:
        cfg = cfg.with_classes([c.strip() for c in args.classes.split(",") if c.strip()])
    return cfg.validate()


def plan_request(args: argparse.Namespace) -> PlanRequest | None:
    """What to plan: None when the user fixed the iteration count (``--iterations`` or a
    ``--config`` file) and gave no time budget, or resumes a run (its plan is in its config)."""
    budget = getattr(args, "time_budget", None)
    explicit = args.iterations is not None or getattr(args, "config", None) is not None
    if getattr(args, "resume", False) or (explicit and budget is None):
        return None
    fixed = {name for flag, name in (
        ("patch", "patch_size"), ("iterations", "iterations"), ("batch_labeled", "batch_labeled"),
        ("batch_unlabeled", "batch_unlabeled"),
    ) if getattr(args, flag, None) is not None}
    if getattr(args, "validate_every", None) is not None or getattr(args, "patience", None) is not None:
        fixed.add("validation")
    report = (lambda text: print(f"barl: {text}", file=sys.stderr, flush=True)) if is_main_process() else None
    return PlanRequest(
        time_budget_s=parse_duration(budget) if budget else None, fixed=frozenset(fixed),
        max_iterations=int(getattr(args, "max_iterations", 3000)), report=report,
    )


def _print_plan(plan: TrainingPlan) -> None:
    if is_main_process():
        print(plan.describe(), flush=True)


def _format_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """A one-line text progress bar (iteration, loss, it/s, ETA) without dependencies.

    On a terminal the line is redrawn in place; otherwise (a log file) a line is
    printed at most every ``interval`` seconds and at the end.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 24, interval: float = 5.0):
        # Resolve stderr at call time: it may have been replaced (pytest, a GUI log).
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = 0.0

    def __call__(self, p: TrainProgress) -> None:
        if p.message:  # a notice (e.g. an out-of-memory retry), on a line of its own
            self.stream.write(("\n" if self.tty else "") + f"barl: {p.message}\n")
            self.stream.flush()
            return
        frac = p.iteration / max(p.total, 1)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        terms = " ".join(f"{k} {v:.3f}" for k, v in p.losses.items() if k != "loss")
        line = (
            f"[{bar}] {p.iteration}/{p.total} loss {p.losses.get('loss', float('nan')):.4f}"
            f" ({terms}) {p.its_per_s:.2f} it/s ETA {_format_eta(p.eta_s)}"
        )
        if p.validation:  # a validation line is always printed, on a line of its own
            v = p.validation
            self.stream.write(("\n" if self.tty else "") + f"barl: iteration {p.iteration}: validation Dice "
                              f"{v['dice']:.4f} (best {v['best']:.4f} at {int(v['best_iteration'])})\n")
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            if p.iteration >= p.total:
                self.stream.write("\n")
        elif now - self._last >= self.interval or p.iteration >= p.total:
            self.stream.write(line + "\n")
            self._last = now
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    token = CancelToken()
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _on_sigint(signum, frame):  # first Ctrl-C: stop cleanly; second: abort
            token.cancel()
            print("\nbarl: stopping after this iteration (Ctrl-C again to abort)", file=sys.stderr)
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, _on_sigint)
    request = plan_request(args)
    try:
        result = train(
            cfg, args.images, args.labels, args.out,
            resume=args.resume, init_from=args.init_from,
            callback=None if args.quiet else ProgressBar(), cancel=token,
            planner=make_planner(request, _print_plan) if request is not None else None,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if result.status == "cancelled":
        raise CancelledError(
            f"stopped at iteration {result.iterations_done}; checkpoint kept at {result.model_path} "
            f"(continue with: barl train --images {args.images} --out {args.out} --resume)"
        )
    if not is_main_process():
        return 0
    last = result.history[-1] if result.history else {}
    loss = f", final loss {last['loss']:.4f}" if "loss" in last else ""
    best = ""
    if result.best_iteration is not None:
        best = (f"; best validation Dice {result.best_score:.4f} at iteration {result.best_iteration}"
                + (" (stopped on the plateau)" if result.stopped_early else ""))
    print(f"trained {result.iterations_done} iterations{loss}{best}; model written to {result.model_path}")
    return 0
