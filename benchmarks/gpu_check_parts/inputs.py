"""What the checks train and predict on: the ``full`` preset's config and seeded phantoms.

Why apart: the methods, release and out-of-memory checks train the same configuration on the
same phantoms, so ``--tiny`` shrinks them in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks import common

__all__ = ["full_config", "phantom_cases", "phantom_data", "train_shape"]


def full_config(args: argparse.Namespace, method: str, iterations: int, num_classes: int, names: Sequence[str]):
    """The ``full`` preset for ``method`` (``--tiny``: small patch, width and batch)."""
    from barl_core.training.config import preset

    over: dict = {"method": method, "iterations": int(iterations), "device": args.device, "checkpoint_every": 0,
                  "log_every": 1, "class_names": tuple(names), "seed": 0,
                  "num_threads": args.threads}
    net = {"num_classes": num_classes}
    if args.tiny:
        over.update(patch_size=(16, 16, 16), batch_labeled=1, batch_unlabeled=1)
        net["base_channels"] = 4
    return preset("full", network=net, **over)


def phantom_cases(shape: Sequence[int], prefix: str) -> tuple[dict, dict]:
    """Four seeded phantoms named ``<prefix><i>``; the even ones labelled, the odd ones not."""
    from barl_core.data.phantom import make_phantom

    cases, labels = {}, {}
    for i in range(4):
        vol, lab = make_phantom(shape=tuple(shape), seed=i)
        vol.metadata = {}
        cases[f"{prefix}{i}"] = common.BenchCase(name=f"{prefix}{i}", image=vol, truth=lab)
        labels[f"{prefix}{i}"] = lab if i % 2 == 0 else None
    return cases, labels


def phantom_data(args: argparse.Namespace, work: Path, shape: Sequence[int]) -> tuple[Path, Path, list[str]]:
    from barl_core.data.phantom import PHANTOM_CLASSES

    cases, labels = phantom_cases(shape, "phantom_")
    img, lab = common.materialise(cases, labels, work / "phantoms")
    return img, lab, list(PHANTOM_CLASSES)


def train_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    return (24, 24, 24) if args.tiny else (112, 128, 128)
