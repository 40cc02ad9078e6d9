"""``barl demo``: the whole BARL loop on the built-in dental CBCT phantom, headless.

Train from a few labelled slices, predict held-out cases, show where the two branches
disagree, reveal the suggested slices' true labels, fine-tune, and print Dice after each
round (:mod:`barl_core.demo`), beside the Dice of as many randomly picked slices.
``--gui`` opens napari with the phantom and the BARL widget instead (needs the ``napari``
extra).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from barl_core.errors import BarlError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``barl demo`` and its options to the subcommands."""
    from barl_core.demo import DemoConfig

    d = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="the whole loop on the built-in CBCT phantom (a few minutes on a CPU)",
        description="Train BARL on a phantom from a few labelled slices, predict, suggest slices "
        "where the branches disagree, reveal their true labels, fine-tune, and print Dice per round.",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="where data, models and labels go (default: a temporary folder)")
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"train + fine-tune rounds (default {d.rounds})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"iterations of the first round (default {d.iterations})")
    p.add_argument("--finetune-iterations", type=int, help="iterations per fine-tune round (default 30%% of --iterations)")
    p.add_argument("--slices-per-round", type=int, default=d.slices_per_round,
                   help=f"suggested slices revealed per round (default {d.slices_per_round})")
    p.add_argument("--device", default=d.device, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=d.seed, help="phantoms, training and suggestions follow from it")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-random-pick", action="store_true",
                   help="skip the baseline column (the same number of random slices, fine-tuned the same "
                   "way; one more fine-tune per round)")
    p.add_argument("--quiet", action="store_true", help="no training progress bar")
    p.add_argument("--gui", action="store_true", help="open napari with the phantom and the BARL widget instead")
    p.set_defaults(func=run)


def _launch_gui(args: argparse.Namespace) -> int:
    try:
        importlib.import_module("napari")
        launch = importlib.import_module("napari_barl.launch")
    except ImportError as exc:
        raise BarlError(
            f"--gui needs napari and the napari-barl plugin ({exc}); install them with "
            "pip install 'napari-barl[napari]' (or run the headless demo without --gui)"
        ) from None
    argv = ["--workspace", str(args.out)] if args.out is not None else []
    return int(launch.main(argv) or 0)


def run(args: argparse.Namespace) -> int:
    """Run the headless loop on the phantom (or open napari with ``--gui``); return the exit code."""
    if args.gui:
        return _launch_gui(args)
    from barl_core.cli.train import ProgressBar
    from barl_core.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        rounds=args.rounds, iterations=args.iterations, finetune_iterations=args.finetune_iterations,
        slices_per_round=args.slices_per_round, device=args.device, seed=args.seed, num_threads=args.threads,
        random_baseline=not args.no_random_pick,
    )
    run_demo(cfg, args.out, train_callback=None if args.quiet else ProgressBar())
    return 0
