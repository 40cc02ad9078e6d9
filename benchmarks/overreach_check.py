"""What sparse validation slices see of a model, against every voxel, and its over-reach.

What it answers: does :func:`barl_core.training.validator.overreach_fraction` (the share of a
class's predicted voxels on slices it over-fills) flag models whose errors lie off the
annotated slices, where the sparse-slice Dice cannot? For each trained model given, the first
``--cases`` test cases of the fixed split are predicted and scored three ways: Dice on the 3
slices a user would have annotated (1/6, 1/2, 5/6 of the structure: what validation sees),
Dice on every voxel, and over-reach against those 3 slices. No training; seconds per model.

Example
-------
``python benchmarks/overreach_check.py run_a/model.pt run_b/model.pt --threads 1``
(docs/benchmarks.md section 1f used the round-0 models of benchmarks/active_learning.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # executed as ``python benchmarks/overreach_check.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common.tables import markdown_table  # noqa: E402


def score_model(model_path: Path, cases: Sequence, slices: int = 3, overlap: float = 0.25) -> dict[str, float]:
    """Mean sparse-slice Dice, full Dice and over-reach of one model over ``cases`` (BenchCase)."""
    from barl_core.inference.predict import load_model, predict_volume
    from barl_core.training.validator import annotated_dice, overreach_fraction

    model = load_model(model_path, device="cpu")
    n = len(model.class_names)
    sparse, full, over = [], [], []
    for case in cases:
        sp = common.sparsify(case.truth, common.foreground_slices(case.truth, slices))
        pred = predict_volume(model, case.image, overlap=overlap).labels
        sparse.append(np.nanmean(annotated_dice(pred, sp, n)))
        full.append(np.nanmean(annotated_dice(pred, case.truth, n)))
        over += [f for f in overreach_fraction(pred, sp, n) if f == f]
    return {"sparse_dice": float(np.mean(sparse)), "full_dice": float(np.mean(full)),
            "overreach": float(np.mean(over)) if over else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/overreach_check.py", description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="model.pt files")
    common.add_dataset_arguments(p)
    p.add_argument("--cases", type=int, default=10, help="test cases scored (the first of the fixed split)")
    common.add_device_arguments(p)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    from benchmarks.label_efficiency_parts.dataset import load_msd

    ds = load_msd(args.data, args.n_test)
    cases = [ds.cases[n] for n in ds.test[: args.cases]]
    rows = []
    for path in args.models:
        r = score_model(path, cases)
        rows.append([str(path), f"{r['sparse_dice']:.3f}", f"{r['full_dice']:.3f}", f"{r['overreach']:.3f}"])
    print(markdown_table(["model", "Dice on 3 sparse slices", "Dice on every voxel", "over-reach"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
