"""``barl train``: train BARL (or a baseline) on a folder with sparse labels.

Writes ``RUN_DIR/model.pt``, periodic checkpoints, ``config.json`` and ``metrics.jsonl``.
Ctrl-C stops cleanly at the next iteration with a checkpoint (continue with ``--resume``);
a second Ctrl-C aborts at once.

An existing run folder is never replaced silently: ``--out`` on a folder holding a run
needs ``--resume`` (continue it) or ``--overwrite`` (start over, deleting its model,
checkpoints and metrics). While training, the folder is locked (``.barl.lock``): a second
``barl train`` into it stops at once with a message naming the first.

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

from barl_core.cli.guards import check_output_folder, same_path
from barl_core.errors import CancelledError, OutputFileError, TrainingError
from barl_core.io.atomic import describe_os_error, remove_stale_temporaries
from barl_core.runtime.cancel import CancelToken
from barl_core.runtime.lock import FolderLock
from barl_core.training.config import METHODS, PRESETS, TrainConfig, parse_disable, preset
from barl_core.training.deadline import stop_words
from barl_core.training.distributed import is_main_process
from barl_core.training.planner import PlanRequest, TrainingPlan, make_planner, parse_duration
from barl_core.training.run import train
from barl_core.training.trainer import TrainProgress
from barl_core.training.validator import OVERREACH_WARNING

__all__ = ["register", "run", "build_config", "ProgressBar"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``barl train`` and its options to the subcommands."""
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
                        "iterations first, then picks the patch and the iteration count), and stop it "
                        "by then even if the machine slows down; with --resume: the resumed part's limit")
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
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every N iterations")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint (to --iterations N if given, "
                        "also after it finished; the schedule is recomputed for N)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in RUN_DIR (its model, checkpoints and metrics are deleted)")
    p.add_argument("--init-from", type=Path, metavar="CKPT", help="fine-tune from this model's weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Build the run's config: ``--config`` file or ``--preset``, then the explicit flags."""
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainingError(f"{args.config}: cannot read the config: {exc}") from None
        try:
            cfg = TrainConfig.from_dict(data).validate()
        except TrainingError as exc:
            raise TrainingError(f"{args.config}: {exc}") from None
    else:
        cfg = preset(args.preset)
    changes: dict = {}
    for flag, name in (
        ("method", "method"), ("iterations", "iterations"), ("batch_labeled", "batch_labeled"),
        ("batch_unlabeled", "batch_unlabeled"), ("device", "device"), ("seed", "seed"),
        ("checkpoint_every", "checkpoint_every"), ("threads", "num_threads"),
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
    if getattr(args, "resume", False) and getattr(args, "time_budget", None):
        # no plan on resume: the budget is the resumed part's wall-clock limit as given
        changes["max_seconds"] = parse_duration(args.time_budget)
    cfg = replace(cfg, **changes)
    if args.classes:
        cfg = cfg.with_classes([c.strip() for c in args.classes.split(",") if c.strip()])
    return cfg.validate()


def plan_request(args: argparse.Namespace) -> PlanRequest | None:
    """Return what to plan, or None when there is nothing to plan.

    None when the user fixed the iteration count (``--iterations`` or a ``--config`` file)
    and gave no time budget, or resumes a run (its plan is in its config).
    """
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
        """Print one progress report (a line, redrawn in place on a terminal) or a notice."""
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
            # over-reach: what the sparse validation slices cannot see (barl_core.training.validator)
            over = (f"; {100 * v['overreach']:.0f}% of the predicted structure on slices it over-fills"
                    if v.get("overreach", 0) >= OVERREACH_WARNING else "")
            self.stream.write(("\n" if self.tty else "") + f"barl: iteration {p.iteration}: validation Dice "
                              f"{v['dice']:.4f} (best {v['best']:.4f} at {int(v['best_iteration'])}){over}\n")
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            if p.iteration >= p.total:
                self.stream.write("\n")
        elif now - self._last >= self.interval or p.iteration >= p.total:
            self.stream.write(line + "\n")
            self._last = now
        self.stream.flush()


#: What a run folder holds (``--overwrite`` deletes exactly these, nothing else).
RUN_FILES = ("model.pt", "config.json", "metrics.jsonl")


def _run_contents(out: Path) -> list[Path]:
    found = [out / n for n in RUN_FILES if (out / n).exists()]
    ckpts = out / "checkpoints"
    if ckpts.is_dir():
        found += sorted(ckpts.glob("ckpt_*.pt"))
    return found


def check_run_folder(args: argparse.Namespace) -> None:
    """Refuse, before any work, what would silently replace or mix runs.

    Raises
    ------
    OutputFileError, TrainingError
        ``--out`` is a file or not writable; it holds a run and neither ``--resume`` nor
        ``--overwrite`` was given (or both were); ``--init-from`` lies in the run that
        ``--overwrite`` would delete; ``--resume --iterations N`` with N below the iterations
        the run has done.
    """
    out: Path = args.out
    if args.resume and args.overwrite:
        raise TrainingError("use either --resume (continue the run) or --overwrite (start over), not both")
    try:
        existing = _run_contents(out) if out.is_dir() else []
    except OSError as exc:
        raise OutputFileError(f"{out}: cannot use as run folder: {describe_os_error(exc)}") from None
    if existing and not (args.resume or args.overwrite):
        raise OutputFileError(
            f"{out}: already holds a run ({', '.join(p.name for p in existing[:3])}); continue it "
            "with --resume, replace it with --overwrite, or choose another --out"
        )
    if args.overwrite and args.init_from is not None and any(same_path(args.init_from, p) for p in existing):
        raise OutputFileError(
            f"{args.init_from}: is part of the run --overwrite would delete; fine-tune into another --out"
        )
    if args.resume and args.iterations is not None:
        _check_resume_iterations(out, args.iterations)
    check_output_folder(out)


def _check_resume_iterations(out: Path, iterations: int) -> None:
    """Refuse ``--resume --iterations N`` below what the run has done, before any work."""
    from barl_core.training.checkpoint import load_checkpoint
    from barl_core.training.resume import latest_checkpoint

    latest = latest_checkpoint(out)
    if latest is None:
        return  # train() says there is nothing to resume
    done = int(load_checkpoint(latest).get("iteration", 0))
    if iterations < done:
        raise TrainingError(
            f"--resume --iterations {iterations}: the run is already at iteration {done}; give more "
            f"iterations to continue it, or fine-tune: --init-from {latest} --out NEW_RUN "
            f"--iterations {iterations}"
        )


def _clear_run(out: Path) -> None:
    for path in _run_contents(out):
        path.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    """Plan if needed, train, and say where the model is; return the exit code."""
    cfg = build_config(args)
    check_run_folder(args)
    lock = FolderLock(args.out, "barl train") if is_main_process() else None
    if lock is not None:
        lock.acquire()
    try:
        if lock is not None:
            # we hold the lock, so every temporary in the folder was left by a killed run
            remove_stale_temporaries(args.out, min_age_s=0)
            if args.overwrite:
                _clear_run(args.out)
        return _train(args, cfg)
    finally:
        if lock is not None:
            lock.release()


def _train(args: argparse.Namespace, cfg: TrainConfig) -> int:
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
            resume=args.resume, resume_to=args.iterations if args.resume else None,
            init_from=args.init_from,
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
        best = f"; best validation Dice {result.best_score:.4f} at iteration {result.best_iteration}"
    stop = f"; {stop_words(result.stop_reason)}" if result.stop_reason else ""
    print(f"trained {result.iterations_done} iterations{loss}{best}{stop}; model written to {result.model_path}")
    return 0
