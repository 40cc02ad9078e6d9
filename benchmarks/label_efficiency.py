"""Label efficiency: Dice / HD95 / ASD against the labelled budget, per method (and ablation).

What it answers: with 5% or 10% of the training cases labelled (whole label maps, or only
3 axial slices each), how close does each method come to a model trained on *all* labels?
Every method goes through the same engine, sampler, augmentation, schedule, network and
evaluation (``barl_core`` public API), so only the method differs.

Protocol (hippocampus, the default)
-----------------------------------
- A fixed split (constant seed :data:`benchmarks.common.SPLIT_SEED`): 40 test cases never
  used in training; the other 168 are the pool. The split is written into the results JSON.
- Budgets: a fraction of the pool's cases is labelled (nested: the 5% cases are among the
  10% cases); ``full`` gives those cases their whole label map, ``sparse`` only 3 axial
  slices through the foreground (rest 255 = ignore). Every other pool case is unlabelled
  (its labels are never written to the training folder).
- Methods ``supervised``, ``mean-teacher``, ``cps``, ``barl``; the upper bound is
  ``supervised`` on all pool labels. ``--ablation`` adds ``barl`` without each of DPR, PCBC,
  region, instance on the 10% sparse setting.
- Each run is scored on the test set (per class: Dice, Jaccard, HD95 and ASD in mm); a row of
  the table is mean ± sd over seeds of the test-set mean.

``--la-root DIR --gpu-protocol`` runs the Left Atrium literature protocol instead
(see :mod:`benchmarks.la_h5`).

Example
-------
``python benchmarks/label_efficiency.py`` (defaults sized for ~1 hour on 2 CPU cores)
``python benchmarks/label_efficiency.py --resume`` (continue a partial run)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/label_efficiency.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.label_efficiency_parts.dataset import load_la, load_msd  # noqa: E402
from benchmarks.label_efficiency_parts.plan import (  # noqa: E402
    ABLATION_TERMS,
    METHODS,
    SPARSE_SLICES,
    RunSpec,
    build_plan,
    make_budgets,
    parse_overrides,
    training_labels,
    validation_names,
)
from benchmarks.label_efficiency_parts.plots import plot, plot_curves  # noqa: E402
from benchmarks.label_efficiency_parts.runs import estimate_seconds, run_one  # noqa: E402
from benchmarks.label_efficiency_parts.summary import render_per_seed, render_tables, summarise  # noqa: E402

__all__ = ["main", "parse_args", "run"]

#: Defaults measured on 2 cores of an Intel Xeon (see docs/benchmarks.md): 42 runs fit ~1 h.
DEFAULT_ITERATIONS = 250
DEFAULT_PATCH = (24, 32, 24)
DEFAULT_BASE = 8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/label_efficiency.py",
        description="Label-efficiency benchmark: supervised / mean-teacher / cps / barl against the "
        "labelled budget (full and sparse labels), an all-labels upper bound and a BARL ablation.",
    )
    common.add_dataset_arguments(p)
    p.add_argument("--budgets", default="0.05,0.1",
                   help="labelled budgets: fractions of the pool (<1) or case counts (>=1); default 0.05,0.1")
    p.add_argument("--settings", default="full,sparse", help="full and/or sparse (3 axial slices per case)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    p.add_argument("--iterations", type=int, default=None, help=f"per run (default {DEFAULT_ITERATIONS})")
    common.add_model_arguments(p, patch_help=f"training patch (default {' '.join(map(str, DEFAULT_PATCH))})",
                               base_help=f"network width (default {DEFAULT_BASE})", batches=True)
    common.add_device_arguments(p, default=None, device_help="cpu (default), auto, cuda, mps")
    p.add_argument("--no-upper", action="store_true", help="skip the all-labels upper bound")
    p.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=None,
                   help="barl with each of dpr,pcbc,region,instance off, on the largest budget, sparse "
                   "labels (default: on, off with --gpu-protocol)")
    p.add_argument("--set", default="",
                   help="method settings for every run of this invocation, e.g. 'dpr=0.5,pcbc=0.25,cps_weight=0.5' "
                        "(loss weights/options of LossConfig, or TrainConfig fields); runs carry them in their name")
    p.add_argument("--ablation-terms", default=",".join(ABLATION_TERMS),
                   help="BARL terms switched off one at a time in the ablation (default all four)")
    common.add_output_arguments(p, "label_efficiency", resume_help="keep runs already in --out and skip them",
                                work_dir_help="where training folders go (default: a temp dir)")
    p.add_argument("--val-cases", type=int, default=0,
                   help="validate during training on this many pool cases (the last of the labelled order, "
                   "never trained on, labelled like the run: sparse or full); 0: no validation")
    p.add_argument("--val-every", type=int, default=100, help="iterations between validations (default 100)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop a run after this many validations without improvement (0: run all iterations)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no new run after this many minutes (the JSON keeps what finished)")
    p.add_argument("--la-root", type=Path, default=None,
                   help="Left Atrium 2018 in the UA-MT h5 layout (train.list/test.list + CASE/mri_norm2.h5)")
    p.add_argument("--gpu-protocol", action="store_true",
                   help="the LA literature protocol: 8 and 16 labelled of 80, patch 112x112x80 (x,y,z), "
                   "base 16, 6000 iterations, device auto, distances in voxels")
    args = p.parse_args(argv)
    _apply_defaults(args)
    return args


def _apply_defaults(args: argparse.Namespace) -> None:
    if args.gpu_protocol:
        from benchmarks.la_h5 import GPU_PROTOCOL as G

        if args.la_root is None:
            raise SystemExit("--gpu-protocol needs --la-root DIR (the UA-MT LA h5 dataset)")
        if args.budgets == "0.05,0.1":
            args.budgets = ",".join(str(n) for n in G.labelled)
        if args.settings == "full,sparse":
            args.settings = "full"
        args.iterations = args.iterations or G.iterations
        args.patch = args.patch or list(G.patch)
        args.base_channels = args.base_channels or G.base_channels
        args.device = args.device or G.device
        args.batch_labeled, args.batch_unlabeled = G.batch_labeled, G.batch_unlabeled
    if args.ablation is None:
        args.ablation = not args.gpu_protocol
    if args.smoke:
        args.iterations = args.iterations or 2
        args.patch = args.patch or [16, 16, 16]
        args.base_channels = args.base_channels or 4
        args.batch_labeled, args.batch_unlabeled = 1, 1
    args.iterations = args.iterations or DEFAULT_ITERATIONS
    args.patch = tuple(args.patch or DEFAULT_PATCH)
    args.base_channels = args.base_channels or DEFAULT_BASE
    args.device = args.device or "cpu"


def _split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def run(args: argparse.Namespace) -> dict:
    """Run the plan; return the final results dict (also written to ``args.out``)."""
    common.set_threads(args.threads)
    if args.la_root is not None:
        ds = load_la(args.la_root)
    else:
        if not (args.data / "imagesTr").is_dir():
            raise SystemExit(f"{args.data}: no imagesTr/ folder (pass --data DIR or --la-root DIR)")
        n_test = args.n_test
        ds = load_msd(args.data, n_test)
    methods = _split_list(args.methods)
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    settings = _split_list(args.settings)
    if set(settings) - {"full", "sparse"}:
        raise SystemExit("--settings takes full and/or sparse")
    seeds = [int(s) for s in _split_list(args.seeds)]
    budgets = make_budgets(_split_list(args.budgets), len(ds.pool))
    terms = _split_list(args.ablation_terms)
    if set(terms) - set(ABLATION_TERMS):
        raise SystemExit(f"--ablation-terms takes a subset of {','.join(ABLATION_TERMS)}")
    abl_budget = max(budgets, key=lambda b: b.n_labelled) if budgets else None
    plan = build_plan(budgets, settings, methods, seeds, upper=not args.no_upper,
                      ablation=args.ablation, ablation_budget=abl_budget, pool_size=len(ds.pool),
                      ablation_terms=terms, overrides=parse_overrides(args.set))

    config = {
        "dataset": ds.name,
        "data": str(args.la_root or args.data),
        "iterations": args.iterations,
        "patch_zyx": list(args.patch),
        "base_channels": args.base_channels,
        "batch_labeled": args.batch_labeled,
        "batch_unlabeled": args.batch_unlabeled,
        "device": args.device,
        "budgets": [b.__dict__ for b in budgets],
        "settings": settings,
        "methods": methods,
        "seeds": seeds,
        "sparse_slices_per_case": SPARSE_SLICES,
        "distance_units": "voxels" if ds.voxel_units else "mm",
        "class_names": list(ds.class_names),
        "gpu_protocol": bool(args.gpu_protocol),
        "validation": {"cases": args.val_cases, "every": args.val_every, "patience": args.patience},
    }
    store = common.ResultsStore.open(
        args.out, "label_efficiency", resume=args.resume, config=config,
        must_match=("dataset", "iterations", "patch_zyx", "base_channels", "batch_labeled",
                    "batch_unlabeled", "sparse_slices_per_case", "distance_units"))
    val_names = validation_names(ds, args.val_cases, budgets)
    store.set("split", {"seed": common.SPLIT_SEED, "test": ds.test, "pool": ds.pool,
                        "labelled_order": ds.pool_order, "validation": val_names,
                        "labelled": {b.label: sorted(ds.pool_order[: b.n_labelled]) for b in budgets}})
    todo = [s for s in plan if not (args.resume and store.has(s.key))]
    print(f"[label_efficiency] {ds.name}: {len(ds.test)} test / {len(ds.pool)} pool cases, "
          f"{len(plan)} runs planned, {len(plan) - len(todo)} already done")
    estimate = estimate_seconds(todo, ds, args)
    print(f"[label_efficiency] estimate: ~{estimate / 60:.1f} min for {len(todo)} runs "
          f"({args.iterations} iterations, patch {args.patch}, base {args.base_channels}, "
          f"device {args.device})")
    if args.max_minutes and estimate / 60 > args.max_minutes:
        print(f"[label_efficiency] warning: the estimate exceeds --max-minutes {args.max_minutes}; "
              "runs that do not start in time are left out (rerun with --resume)")

    t_start = time.perf_counter()
    test_cases = {n: ds.cases[n] for n in ds.test}
    with common.temp_work_dir("barl_bench_", args.work_dir) as tmp:
        folders: dict[tuple, tuple[Path, Path]] = {}
        durations: dict[str, list[float]] = {}
        for i, spec in enumerate(todo, 1):
            elapsed = (time.perf_counter() - t_start) / 60
            if args.max_minutes and elapsed > args.max_minutes:
                print(f"[label_efficiency] --max-minutes reached after {elapsed:.1f} min; "
                      f"{len(todo) - i + 1} runs left for --resume")
                break
            fkey = (spec.budget.label, spec.setting, spec.group == "upper")
            if fkey not in folders:
                labels = training_labels(ds, spec)
                pool_cases = {n: ds.cases[n] for n in ds.pool if n not in val_names}
                labels = {n: v for n, v in labels.items() if n not in val_names}
                folders[fkey] = common.materialise(pool_cases, labels, Path(tmp) / f"labels_{len(folders)}",
                                                   images_dir=Path(tmp) / "imagesTr")
            img_dir, lab_dir = folders[fkey]
            t_run = time.perf_counter()
            record = run_one(spec, ds, args, img_dir, lab_dir, Path(tmp) / f"run_{i}", test_cases, val_names)
            store.add_run(spec.key, record)
            durations.setdefault(spec.method, []).append(time.perf_counter() - t_run)
            print(f"[label_efficiency] {i}/{len(todo)} {spec.key}: mean fg Dice "
                  f"{_num(record['mean_fg_dice'])} (train {record['train_seconds']:.0f} s, "
                  f"eval {record['eval_seconds']:.0f} s; ~{_eta(todo[i:], durations) / 60:.0f} min left)",
                  flush=True)
    summary = summarise(store.runs, ds.class_names)
    store.set("summary", summary)
    store.save(finished=True)
    tables = render_tables(summary, ds.class_names, jaccard=ds.voxel_units)
    tables += "\n\n" + render_per_seed(store.runs, ds.class_names)
    print()
    print(tables)
    print(f"\n[label_efficiency] {len(store.runs)} runs in {args.out}; "
          f"this session took {(time.perf_counter() - t_start) / 60:.1f} min")
    if args.plot:
        plot(summary, args.plot, f"{ds.name}: Dice vs labelled budget")
        print(f"[label_efficiency] plot: {args.plot}")
        if any(r.get("curve") for r in store.runs.values()):
            curves = args.plot.with_name(args.plot.stem + "_curves.png")
            plot_curves(store.runs, curves, f"{ds.name}: validation Dice during training")
            print(f"[label_efficiency] learning curves: {curves}")
    return store.data


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _eta(remaining: Sequence[RunSpec], durations: dict[str, list[float]]) -> float:
    """Seconds left: each remaining run costs the mean of finished runs of its method."""
    overall = [d for ds in durations.values() for d in ds]
    if not overall:
        return 0.0
    fallback = sum(overall) / len(overall)
    return sum(sum(durations[s.method]) / len(durations[s.method]) if s.method in durations else fallback
               for s in remaining)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
