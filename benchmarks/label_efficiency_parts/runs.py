"""One label-efficiency run (train, then score on the test set) and the plan's time estimate.

Every training, prediction and metric goes through ``barl_core``'s public API by way of
:mod:`benchmarks.common`; only the method and its settings differ between runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks import common
from benchmarks.common import BenchCase

from .dataset import Dataset
from .plan import SPARSE_SLICES, RunSpec, training_labels
from .summary import mean_fg_dice

__all__ = ["run_one", "estimate_seconds"]


def run_one(spec: RunSpec, ds: Dataset, args: argparse.Namespace, img_dir: Path, lab_dir: Path,
            out_dir: Path, test_cases: dict[str, BenchCase], val_names: Sequence[str] = ()) -> dict:
    """Train one configuration (validating on ``val_names`` when given) and score it on the test set."""
    validation = {"every": args.val_every, "patience": args.patience} if val_names else None
    cfg = common.build_train_config(
        method=spec.method, iterations=args.iterations, patch=args.patch,
        base_channels=args.base_channels, num_classes=len(ds.class_names), seed=spec.seed,
        disable=spec.disable, batch_labeled=args.batch_labeled, batch_unlabeled=args.batch_unlabeled,
        device=args.device, class_names=ds.class_names, num_threads=args.threads, validation=validation,
        overrides=dict(spec.overrides),
    )
    curve: list[dict] = []
    best_iteration = None
    iterations_done = args.iterations
    if val_names:
        val_cases = {n: ds.cases[n] for n in val_names}
        val_labels = ({n: common.sparsify(c.truth, common.foreground_slices(c.truth, SPARSE_SLICES))
                       for n, c in val_cases.items()} if spec.setting == "sparse" else None)
        diagnostic = None
        if spec.setting == "sparse":  # pseudo-label quality on the unannotated voxels of the labelled cases
            diagnostic = {n: (ds.cases[n], lab) for n, lab in training_labels(ds, spec).items()
                          if n not in val_names}
        result, train_s, curve = common.train_with_curve(cfg, img_dir, lab_dir, out_dir, validation=val_cases,
                                                         validation_labels=val_labels, diagnostic=diagnostic)
        model_path, best_iteration, iterations_done = result.model_path, result.best_iteration, result.iterations_done
    else:
        model_path, train_s = common.train_model(cfg, img_dir, lab_dir, out_dir)
    ev = common.evaluate_model(model_path, test_cases, num_classes=len(ds.class_names),
                               class_names=ds.class_names, voxel_units=ds.voxel_units,
                               device=args.device)
    record = {
        "group": spec.group,
        "setting": spec.setting,
        "budget": spec.budget.label,
        "budget_fraction": spec.budget.fraction,
        "n_labelled": spec.budget.n_labelled,
        "method": spec.method,
        "variant": spec.variant,
        "disable": list(spec.disable),
        "overrides": dict(spec.overrides),
        "seed": spec.seed,
        "iterations": args.iterations,
        "iterations_done": iterations_done,
        "best_iteration": best_iteration,
        "curve": curve,
        "train_seconds": round(train_s, 2),
        "eval_seconds": round(ev["seconds"], 2),
        "metrics": ev["mean"],
        "per_case": ev["per_case"],
    }
    record["mean_fg_dice"] = mean_fg_dice(record, ds.class_names)
    return record


def estimate_seconds(todo: Sequence[RunSpec], ds: Dataset, args: argparse.Namespace) -> float:
    """Seconds for the plan, from a short timed training of each method on this machine."""
    if not todo:
        return 0.0
    methods = sorted({s.method for s in todo})
    per_it: dict[str, float] = {}
    labels = training_labels(ds, todo[0])
    names = list(labels)[:2] + [n for n in ds.pool if n not in labels][:2]
    eval_per_case = 0.0
    with common.temp_work_dir("barl_calib_", args.work_dir) as tmp:
        for m in methods:
            cfg = common.build_train_config(
                method=m, iterations=4, patch=args.patch, base_channels=args.base_channels,
                num_classes=len(ds.class_names), seed=0, batch_labeled=args.batch_labeled,
                batch_unlabeled=args.batch_unlabeled, device=args.device,
                class_names=ds.class_names, num_threads=args.threads)
            model = Path(tmp) / f"{m}.pt"
            times = common.iteration_times(cfg, {n: ds.cases[n] for n in names},
                                           {n: labels.get(n) for n in names}, Path(tmp) / m, save_to=model)
            per_it[m] = common.robust_iteration_time(times, warmup=1)
        probe_method = next((m for m in ("barl", "cps", "mean-teacher") if m in methods), methods[0])
        probe = {n: ds.cases[n] for n in ds.test[:3]}
        ev = common.evaluate_model(Path(tmp) / f"{probe_method}.pt", probe, num_classes=len(ds.class_names),
                                   class_names=ds.class_names, device=args.device)
        eval_per_case = ev["seconds"] / len(probe)
    print("[label_efficiency] seconds per iteration: "
          + ", ".join(f"{m} {t:.3f}" for m, t in per_it.items())
          + f"; prediction + metrics per test case ({probe_method}): {eval_per_case:.2f} s")
    total = sum(per_it[s.method] * args.iterations for s in todo)
    total *= 1.1  # set-up, data loading and the final checkpoint
    total += len(todo) * len(ds.test) * eval_per_case
    return total
