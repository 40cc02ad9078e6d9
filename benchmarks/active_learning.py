"""Active learning: Dice against the number of annotated slices, per slice-selection strategy.

What it answers: how many fewer annotated slices does choosing them with the product's
default ranking (``focused``) need to reach the Dice that **random** choice reaches at the
end? ``entropy`` and ``disagreement`` (the old default) are the other baselines.

Protocol (on the converged training of issue 11)
------------------------------------------------
- The fixed split of :mod:`benchmarks.label_efficiency` (same constant seed and, by default,
  the same 40 test cases): the test set is never trained on. The first ``--cases`` cases of
  the fixed labelled order start with ``--start-slices`` (3) annotated axial slices each, at
  1/6, 1/2 and 5/6 of the structure (the sparse setting of the label-efficiency benchmark;
  one middle slice per case gave a broken round 0, Dice 0.105); the next ``--pool - --cases``
  pool cases are unlabelled data for the semi-supervised method; the rest of the pool is not
  used (a cut, see below). The strategies pick among the annotated cases, or with
  ``--pick-from pool`` among all of these pool cases (a picked slice of an unlabelled case
  makes it a labelled one): then choosing *which case* is part of the pick.
- Round 0 trains one ``barl`` model from scratch at the planner's hippocampus patch
  (32x48x32) for ``--iterations`` (1000): the start shared by every strategy and seed
  (with ``--work-dir`` it is cached there; ``--round0-only`` trains it and stops, so the
  strategies can then run as parallel processes that reuse it).
- Each round: predict every annotated case with the current model, rank its axial slices by
  the strategy under test (annotated slices are never re-picked), take the ``K`` best across
  cases, reveal their true labels, fine-tune from the previous model for
  ``--finetune-iterations`` (100, the same for every strategy) at ``--finetune-lr`` (1e-3:
  AdamW restarts with each fine-tune, and the round-0 rate of 3e-3 would first undo what the
  previous model learned), and score the test set.
- ``focused`` gets per-slice pooled decoder features from the same prediction
  (``predict_volume(return_features=True)``) for its feature-space coverage factor.
- The saving is read off the curves by linear interpolation; if a strategy never reaches
  random's final Dice, the script says so. Each pick's foreground voxels and whether it lies
  outside the structure's z-extent are recorded with it, so the pick statistics survive a
  merge of results files (:mod:`benchmarks.merge_results`).

Cost and what was cut (2 CPU cores, one thread per process)
-----------------------------------------------------------
Measured on this project's machine in CPU seconds: a ``barl`` iteration at 32x48x32, width 8,
batch 2+2 costs ~0.62-0.71 s; predicting one hippocampus case ~0.2 s (8 windows of 32x48x32
at overlap 0.25 or 0.5 alike); loading 48 cases for a fine-tune ~2 s. The defaults (3 seeds x 4
strategies x 6 rounds = 72 fine-tunes of 100 iterations, 40 test cases each round) are
~0.7 x 100 + ~15 s = ~85 s per round, ~51 min for 36 rounds per process, after the shared
round 0 (1000 iterations, ~9-12 min): **~60-65 minutes as two parallel processes** (two
strategies each). Cut to fit, instead of seeds or rounds: the unlabelled pool (40 of the
160 other pool cases: a fine-tune loads 48 cases, not 168), one shared round-0 model instead
of one per seed (the seeds vary the fine-tuning and the random draws, so the sd understates
the spread a new round 0 would add), and 100 fine-tuning iterations per round. The window
overlap is the engine's default (0.5): at this patch a hippocampus case needs 8 windows at
any overlap, so cutting it saved nothing.

Example
-------
See docs/benchmarks.md section 2 for the full run (round 0, then two processes, then merge).
``python benchmarks/active_learning.py --smoke --data DIR`` checks the pipeline on phantoms.
``python benchmarks/active_learning.py --advice-only --out benchmarks/results/active_learning.json``
replays the "label more or stop?" advice along the stored curves (no training) and prints
where it stops, against where each curve flattens and the rule before its recalibration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/active_learning.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.active_learning_parts.render import (  # noqa: E402
    answer_text,
    plot,
    render_per_seed,
    render_picks,
    render_table,
)
from benchmarks.active_learning_parts.rounds import round0, run_strategy  # noqa: E402
from benchmarks.active_learning_parts.selection import (  # noqa: E402
    DEFAULT_OVERLAP,
    RANKING_STRATEGIES,
    select_slices,
)
from benchmarks.active_learning_parts.summary import (  # noqa: E402
    mean_curve,
    paired_differences,
    pick_facts,
    pick_stats,
    slices_to_reach,
    summarise,
    summarise_all,
)
from benchmarks.al_advice import advice_only, render_advice  # noqa: E402

__all__ = ["STRATEGIES", "RANKING_STRATEGIES", "DEFAULT_OVERLAP", "select_slices", "slices_to_reach",
           "mean_curve", "paired_differences", "summarise", "pick_facts", "pick_stats", "summarise_all",
           "render_per_seed", "render_picks", "answer_text", "render_table", "plot", "main", "parse_args",
           "run"]

STRATEGIES = ("random", "entropy", "disagreement", "focused", "focused2", "focused3")
#: What ``--strategies`` runs unless told: ``focused2`` (a preset of
#: :data:`barl_core.active.ranking.RANKING_PRESETS`, not the default yet) only when asked.
DEFAULT_STRATEGIES = ("random", "entropy", "disagreement", "focused")
DEFAULT_ITERATIONS = 1000
DEFAULT_FINETUNE = 100
#: Peak learning rate of each fine-tune (round 0 uses the benchmarks' ``BENCH_LR``, 3e-3).
DEFAULT_FINETUNE_LR = 1e-3
DEFAULT_ROUNDS = 6
DEFAULT_N_TEST = 40
DEFAULT_SEEDS = "0,1,2"
#: Pool cases the engine trains on: the ``--cases`` annotated ones, the rest unlabelled.
DEFAULT_POOL = 48
#: Annotated axial slices each of the ``--cases`` cases starts with (at 1/6, 1/2 and 5/6 of the
#: structure, as the sparse settings of :mod:`benchmarks.label_efficiency` place them). One
#: middle slice per case gave a broken round-0 model under the design weights (test Dice 0.105,
#: confident false positives beyond the structure's ends).
DEFAULT_START_SLICES = 3
#: The planner's patch for hippocampus (the median shape rounded down; issue 11).
DEFAULT_PATCH = (32, 48, 32)
DEFAULT_BASE = 8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/active_learning.py",
        description="Active-learning benchmark: Dice vs annotated slices for the focused, disagreement, "
        "entropy and random slice-selection strategies.",
    )
    common.add_dataset_arguments(p)
    p.add_argument("--cases", type=int, default=8, help="pool cases that get annotated slices (default 8)")
    p.add_argument("--start-slices", type=int, default=DEFAULT_START_SLICES,
                   help=f"annotated axial slices per case at the start, spread through the structure "
                   f"(default {DEFAULT_START_SLICES})")
    p.add_argument("--pick-from", choices=("annotated", "pool"), default="annotated",
                   help="cases the strategies pick slices from: the --cases annotated ones (default), or "
                   "every --pool case, the unlabelled ones included (then choosing a case is part of the pick)")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL,
                   help=f"pool cases the engine trains on: the --cases annotated ones, then the next ones of "
                   f"the fixed order, unlabelled (default {DEFAULT_POOL}; 0: the whole pool)")
    p.add_argument("--k", type=int, default=4, help="slices revealed per round (default 4)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"selection rounds after the start (default {DEFAULT_ROUNDS})")
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help=f"subset of {','.join(STRATEGIES)} (default {','.join(DEFAULT_STRATEGIES)})")
    p.add_argument("--method", default="barl", help="training method (needs two branches for disagreement)")
    p.add_argument("--iterations", type=int, default=None, help=f"round-0 training (default {DEFAULT_ITERATIONS})")
    p.add_argument("--finetune-iterations", type=int, default=None,
                   help=f"per round, from the previous model (default {DEFAULT_FINETUNE})")
    p.add_argument("--finetune-lr", type=float, default=DEFAULT_FINETUNE_LR,
                   help=f"peak learning rate of each fine-tune (default {DEFAULT_FINETUNE_LR})")
    p.add_argument("--no-features", action="store_true",
                   help="focused without its feature-space coverage factor (an ablation)")
    p.add_argument("--round0-only", action="store_true",
                   help="train (or reuse) the shared round-0 model in --work-dir, score it, and stop: "
                   "the strategies can then run as parallel processes that reuse it")
    common.add_model_arguments(p)
    common.add_device_arguments(p)
    common.add_output_arguments(p, "active_learning", resume_help="keep (strategy, seed) runs already in --out")
    p.add_argument("--advice-only", action="store_true",
                   help="no training: replay the label-more-or-stop advice along the curves stored in --out, "
                   "write it into that file's summary and print the table")
    p.add_argument("--round0-seed", type=int, default=0,
                   help="seed of the one round-0 model every seed and strategy starts from (default 0); "
                   "with --work-dir it is kept there and reused by later sessions")
    p.set_defaults(n_test=DEFAULT_N_TEST, seeds=DEFAULT_SEEDS)
    args = p.parse_args(argv)
    if args.smoke:
        args.iterations = args.iterations or 2
        args.finetune_iterations = args.finetune_iterations or 1
        args.patch = args.patch or [16, 16, 16]
        args.base_channels = args.base_channels or 4
    args.iterations = args.iterations or DEFAULT_ITERATIONS
    args.finetune_iterations = args.finetune_iterations or DEFAULT_FINETUNE
    args.patch = tuple(args.patch or DEFAULT_PATCH)
    args.base_channels = args.base_channels or DEFAULT_BASE
    if args.round0_only and args.work_dir is None:
        p.error("--round0-only needs --work-dir (where the later sessions find the model)")
    return args


def run(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    from benchmarks.label_efficiency_parts.dataset import load_msd

    if not (args.data / "imagesTr").is_dir():
        raise SystemExit(f"{args.data}: no imagesTr/ folder (pass --data DIR)")
    ds = load_msd(args.data, args.n_test)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = sorted(set(strategies) - set(STRATEGIES))
    if bad:
        raise SystemExit(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    pool_names = list(ds.pool_order[: args.pool] if args.pool > 0 else ds.pool_order)
    if len(pool_names) < args.cases:
        raise SystemExit(f"--pool {args.pool} holds fewer cases than --cases {args.cases}")
    al_cases = sorted(pool_names[: args.cases])
    pool_cases = {n: ds.cases[n] for n in pool_names}
    test_cases = {n: ds.cases[n] for n in ds.test}
    start = {n: set(common.foreground_slices(ds.cases[n].truth, args.start_slices)) for n in al_cases}
    # the cases a strategy may pick from; unannotated ones start empty and stay unlabelled until picked
    candidates = al_cases if args.pick_from == "annotated" else sorted(pool_names)
    t_start = time.perf_counter()
    if args.round0_only:
        round0(args, ds, pool_cases, test_cases, start, Path(args.work_dir))
        print(f"[active_learning] round 0 ready in {args.work_dir} after "
              f"{(time.perf_counter() - t_start) / 60:.1f} min")
        return {}

    config = {
        "dataset": ds.name, "data": str(args.data), "cases": al_cases, "pool": len(pool_cases), "k": args.k,
        "rounds": args.rounds, "strategies": strategies, "method": args.method, "seeds": seeds,
        "iterations": args.iterations, "finetune_iterations": args.finetune_iterations,
        "finetune_lr": args.finetune_lr, "features": not args.no_features, "round0_seed": args.round0_seed,
        "overlap": DEFAULT_OVERLAP, "patch_zyx": list(args.patch),
        "base_channels": args.base_channels, "device": args.device, "class_names": list(ds.class_names),
        "start_slices": {n: sorted(v) for n, v in start.items()},
    }
    if args.pick_from != "annotated":  # absent from older results files, which picked among the annotated
        config["pick_from"] = args.pick_from
    store = common.ResultsStore.open(
        args.out, "active_learning", resume=args.resume, config=config,
        must_match=("dataset", "cases", "pool", "k", "rounds", "method", "iterations", "finetune_iterations",
                    "finetune_lr", "features", "round0_seed", "overlap", "patch_zyx", "base_channels",
                    "start_slices", "pick_from"))
    store.set("split", {"seed": common.SPLIT_SEED, "test": ds.test, "pool": ds.pool})
    n_tune = len(seeds) * len(strategies) * args.rounds
    print(f"[active_learning] {len(al_cases)} annotated + {len(pool_cases) - len(al_cases)} unlabelled pool "
          f"cases, K={args.k}, {args.rounds} rounds, strategies {strategies}, seeds {seeds}: "
          f"1 x {args.iterations} iterations (shared round 0) + {n_tune} x {args.finetune_iterations} "
          f"fine-tuning iterations, {len(test_cases)} test cases")
    with common.temp_work_dir("barl_al_", args.work_dir) as tmp:
        work = Path(tmp)
        model0 = p0 = None
        for seed in seeds:
            for strategy in strategies:
                if args.resume and store.has(f"{strategy}/seed{seed}"):
                    continue
                if model0 is None:
                    model0, p0 = round0(args, ds, pool_cases, test_cases, start, work)
                    store.set("round0", p0)
                store.add_run(f"{strategy}/seed{seed}",
                              run_strategy(args, ds, strategy, seed, candidates, pool_cases, test_cases,
                                           {n: start.get(n, set()) for n in candidates}, model0, p0, work))
    summary = summarise_all(store.runs, STRATEGIES, {n: ds.cases[n].truth for n in candidates})
    store.set("summary", summary)
    store.save(finished=True)
    print()
    print(render_table(summary))
    print()
    print(render_picks(summary["picks"]))
    print()
    print(render_advice(summary["advice"]))
    print()
    print(answer_text(summary))
    print(f"\n[active_learning] results in {args.out}; this session took "
          f"{(time.perf_counter() - t_start) / 60:.1f} min")
    if args.plot:
        plot(summary, args.plot, f"{ds.name}: Dice vs annotated slices")
        print(f"[active_learning] plot: {args.plot}")
    return store.data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.advice_only:
        print(advice_only(args.out))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
