"""The phantom cases and the throwaway model the speed parts measure (weights do not matter)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks import common

__all__ = ["phantom_cases", "make_model"]


def phantom_cases(n: int, shape: Sequence[int], slices: int = 3) -> tuple[dict, dict]:
    """``n`` phantoms (seeds 0..n-1): cases and sparse labels (even cases labelled)."""
    from barl_core.data.phantom import make_phantom

    cases, labels = {}, {}
    for i in range(n):
        vol, lab = make_phantom(shape=tuple(shape), seed=i)
        vol.metadata = {}
        name = f"phantom_{i:03d}"
        cases[name] = common.BenchCase(name=name, image=vol, truth=lab)
        labels[name] = common.sparsify(lab, common.foreground_slices(lab, slices)) if i % 2 == 0 else None
    return cases, labels


def make_model(args: argparse.Namespace, cases: dict, labels: dict, work: Path, patch: Sequence[int]) -> Path:
    """A BARL checkpoint whose patch (the default inference window) is ``patch``.

    Its weights come from one training iteration: speed and memory do not depend on them.
    """
    from barl_core.data.phantom import PHANTOM_CLASSES

    cfg = common.build_train_config(
        method="barl", iterations=1, patch=patch, base_channels=args.base_channels,
        num_classes=len(PHANTOM_CLASSES), seed=0, batch_labeled=1, batch_unlabeled=1,
        device=args.device, class_names=PHANTOM_CLASSES, num_threads=args.threads)
    img_dir, lab_dir = common.materialise(cases, labels, work / "model_data")
    path, _ = common.train_model(cfg, img_dir, lab_dir, work / "model_run")
    return path
