"""The whole BARL loop, headless, on the built-in dental CBCT phantom (``barl demo``).

What a radiologist does in the app, done by a script, so anyone can watch the method work
in a few minutes on a laptop CPU:

1. make a phantom dataset: a few training cases, two of them with two or three labelled
   axial slices (the rest of every volume is "not annotated", 255), and held-out test cases;
2. train BARL from those slices (the ``quick`` preset, CPU-sized);
3. predict the test cases and score them against the phantom's ground truth (Dice);
4. predict the training cases, show where the two branches disagree on and near the
   structure, and rank the unannotated slices to label next with the app's default ranking
   (:func:`barl_core.active.ranking.rank_slices`, each pick with its reason);
5. "annotate" the suggested slices by revealing their true labels (the phantom knows them);
6. fine-tune from the previous model (``init_from``, fewer iterations) and go to 3.

Beside it runs the baseline that says whether the suggestions are worth following: from the
same round-0 model, the same number of slices picked **at random** each round, revealed and
fine-tuned the same way (same iterations, learning rate and seed). The table prints the Dice of
every round for both, and the gain of the suggestions over the random pick. One seed on small
phantoms: a demonstration, not a benchmark (that is ``benchmarks/active_learning.py``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from barl_core.data.labels import annotated_slices
from barl_core.errors import TrainingError
from barl_core.io.volume import read_volume, write_labels

__all__ = ["DemoConfig", "RoundResult", "DemoResult", "run_demo", "format_table", "sparkline"]

_BARS = " ▁▂▃▄▅▆▇█"


@dataclass
class DemoConfig:
    """Sizes of the demo (defaults: a few minutes on 2 CPU cores).

    Parameters
    ----------
    rounds : int
        Train once, then ``rounds - 1`` annotate-and-fine-tune rounds.
    iterations : int
        Training iterations of the first round.
    finetune_iterations : int or None
        Iterations of each fine-tuning round (default 30% of ``iterations``: with the random
        baseline each round fine-tunes twice, and the demo should take about as long as it
        did with one fine-tune of half of ``iterations``).
    slices_per_round : int
        Suggested slices whose true labels are revealed after each round.
    n_train, n_labelled, initial_slices, n_test : int
        Training cases, how many of them start with ``initial_slices`` labelled axial
        slices, and held-out test cases.
    shape : tuple of int
        Phantom size ``(z, y, x)``.
    patch_size : tuple of int
        Training patch (also the inference window).
    base_channels : int
        Network width.
    batch_labeled, batch_unlabeled : int
        Patches per iteration around annotated voxels / anywhere.
    optimizer : {"adamw", "sgd"}
        AdamW (default here) reaches a usable model in the few hundred iterations a CPU
        demo can afford; the design note's SGD needs thousands.
    lr : float
        Peak learning rate of the first round (poly-decayed).
    finetune_lr : float or None
        Peak learning rate of the fine-tuning rounds (None: ``lr``); lower than ``lr``, as
        the optimiser restarts from scratch and a large first step would undo what the
        previous round learned.
    foreground_fraction : float
        Share of labelled patches centred on a foreground class (teeth and lesions are
        a few percent of the volume).
    device : str
        ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    seed : int
        Phantoms, training and suggestions follow from it.
    num_threads : int or None
        torch threads (None: torch's default).
    random_baseline : bool
        Also fine-tune on the same number of randomly picked slices each round (the table's
        "random pick" and "gain" columns); costs one more fine-tune per round.
    """

    rounds: int = 3
    iterations: int = 250
    finetune_iterations: int | None = None
    slices_per_round: int = 3
    n_train: int = 4
    n_labelled: int = 2
    initial_slices: int = 2
    n_test: int = 2
    shape: tuple[int, int, int] = (48, 64, 64)
    patch_size: tuple[int, int, int] = (16, 32, 32)
    base_channels: int = 8
    batch_labeled: int = 2
    batch_unlabeled: int = 2
    optimizer: str = "adamw"
    lr: float = 3e-3
    finetune_lr: float | None = 1e-3
    foreground_fraction: float = 0.5
    device: str = "auto"
    seed: int = 0
    num_threads: int | None = None
    random_baseline: bool = True

    def validate(self) -> DemoConfig:
        """Check the options; return self (so it chains)."""
        if self.rounds < 1:
            raise TrainingError("the demo needs at least one round")
        if self.iterations < 1 or (self.finetune_iterations is not None and self.finetune_iterations < 1):
            raise TrainingError("iterations must be >= 1")
        if self.slices_per_round < 0:
            raise TrainingError("slices per round must be >= 0")
        if not 1 <= self.n_labelled <= self.n_train or self.n_test < 1 or self.initial_slices < 1:
            raise TrainingError("the demo needs 1 <= labelled cases <= training cases, test cases >= 1, slices >= 1")
        return self


@dataclass
class RoundResult:
    """Outcome of one round: data used, test Dice, what was suggested next."""

    round: int
    annotated_slices: int
    iterations: int
    dice: dict[str, float]
    mean_dice: float
    seconds: float
    model_path: Path
    suggestions: list[tuple[str, int, float]] = field(default_factory=list)
    random_dice: float | None = None
    random_picks: list[tuple[str, int]] = field(default_factory=list)

    @property
    def gain(self) -> float | None:
        """Mean Dice of the suggestions' model minus the random pick's (None without one)."""
        if self.random_dice is None or not math.isfinite(self.random_dice) or not math.isfinite(self.mean_dice):
            return None
        return self.mean_dice - self.random_dice


@dataclass
class DemoResult:
    """Every round's numbers: annotated slices, Dice per class, the runs' folders."""

    rounds: list[RoundResult]
    out_dir: Path
    class_names: tuple[str, ...]
    seconds: float

    @property
    def mean_dice(self) -> list[float]:
        """Mean foreground Dice of each round."""
        return [r.mean_dice for r in self.rounds]


def sparkline(values: Sequence[float], width: int = 48) -> str:
    """Per-slice values as a one-line bar chart (bins averaged to ``width`` characters)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return ""
    bins = np.array_split(v, min(width, v.size))
    means = np.array([b.mean() for b in bins])
    hi = means.max()
    if hi <= 0:
        return _BARS[0] * len(means)
    idx = np.clip(np.round(means / hi * (len(_BARS) - 1)), 0, len(_BARS) - 1).astype(int)
    return "".join(_BARS[i] for i in idx)


def format_table(rounds: Sequence[RoundResult], class_names: Sequence[str]) -> str:
    """Return the Dice table printed at the end (one row per round).

    With the random baseline, ``random pick`` is the mean Dice after fine-tuning on as many
    randomly picked slices instead of the suggested ones, and ``gain`` the difference (round 0
    is one model for both).
    """
    fg = list(class_names[1:])
    baseline = any(r.random_dice is not None for r in rounds)
    head = ["round", "slices", "iters"] + fg + ["mean"] + (["random pick", "gain"] if baseline else []) + ["time"]
    rows = [head]
    for r in rounds:
        extra = []
        if baseline:
            gain = r.gain
            extra = [_fmt(r.random_dice) if r.random_dice is not None else "n/a",
                     "same model" if r.round == 0 else "n/a" if gain is None else f"{gain:+.3f}"]
        rows.append(
            [str(r.round), str(r.annotated_slices), str(r.iterations)]
            + [_fmt(r.dice.get(c, math.nan)) for c in fg]
            + [_fmt(r.mean_dice)] + extra + [f"{r.seconds:.0f}s"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _dice_scores(model, test_images: list[Path], truth_dir: Path, class_names: Sequence[str]) -> dict[str, float]:
    """Return the Dice per foreground class, averaged over the test cases.

    A class absent from both prediction and truth of a case is left out of that case's average.
    """
    from barl_core.evaluation.metrics import dice
    from barl_core.inference.predict import predict_volume

    per: dict[str, list[float]] = {c: [] for c in class_names[1:]}
    for path in test_images:
        vol = read_volume(path)
        gt = read_volume(truth_dir / path.name).array
        pred = predict_volume(model, vol).labels
        for k, name in enumerate(class_names[1:], start=1):
            d = dice(pred == k, gt == k)
            if math.isfinite(d):
                per[name].append(d)
    return {c: float(np.mean(v)) if v else math.nan for c, v in per.items()}


def _suggest(
    model, images: list[Path], labels_dir: Path, k: int, stream: TextIO, class_names: Sequence[str]
) -> list[tuple[str, int, float]]:
    """Predict the training cases, show the per-slice quantity the ranking uses, pick ``k`` slices.

    The ranking is the app's default (``focused``, :func:`barl_core.active.ranking.rank_slices`
    across all cases), so the demo shows what the app would suggest, with its reasons.
    """
    from barl_core.active.focus import PROFILE_LABEL, focus_profile
    from barl_core.active.ranking import CaseInputs, RankingConfig, rank_slices
    from barl_core.inference.predict import predict_volume

    cases: list[CaseInputs] = []
    print(f"  per axial slice, {PROFILE_LABEL}:", file=stream)
    for path in images:
        name = path.name.split(".")[0]
        lab_path = labels_dir / path.name
        labels = read_volume(lab_path).array if lab_path.exists() else None
        pred = predict_volume(model, read_volume(path), return_features=True)
        dis = pred.disagreement.astype(np.float32)
        profile = focus_profile(dis, pred.labels, labels, num_classes=len(class_names))
        print(f"    {name}: |{sparkline(profile)}|  {len(annotated_slices(labels))} slices annotated",
              file=stream)
        cases.append(CaseInputs(name, dis, pred.labels, labels, features=pred.slice_features))
    picks = rank_slices(cases, top_k=k, config=RankingConfig(min_gap=3), num_classes=len(class_names),
                        class_names=tuple(class_names))
    print("  suggested next (annotating them = revealing the phantom's true labels):", file=stream)
    for p in picks:
        print(f"    {p.case} slice z={p.index:<3d} focused score {p.score:.3f}: {p.reason}", file=stream)
    return [(p.case, p.index, float(p.score)) for p in picks]


def _random_picks(images: list[Path], labels_dir: Path, k: int, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """``k`` unannotated axial slices drawn uniformly from all training cases (the baseline)."""
    free = []
    for path in images:
        name = path.name.split(".")[0]
        lab_path = labels_dir / path.name
        n = read_volume(path).shape[0]
        done = set(annotated_slices(read_volume(lab_path).array)) if lab_path.exists() else set()
        free += [(name, z) for z in range(n) if z not in done]
    chosen = rng.choice(len(free), size=min(k, len(free)), replace=False) if free else []
    return [(free[i][0], free[i][1], 0.0) for i in sorted(int(i) for i in chosen)]


def _reveal(picks: list[tuple[str, int, float]], images_dir: Path, labels_dir: Path, truth_dir: Path) -> None:
    """Copy the true labels of the picked slices into the sparse label maps."""
    for name, z, _ in picks:
        image = read_volume(images_dir / f"{name}.nii.gz")
        gt = read_volume(truth_dir / f"{name}.nii.gz").array
        lab_path = labels_dir / f"{name}.nii.gz"
        labels = read_volume(lab_path).array.astype(np.uint8) if lab_path.exists() else np.full(gt.shape, 255, np.uint8)
        labels[z] = gt[z]
        write_labels(labels, image, lab_path)


def _mean_finite(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _count_annotated(labels_dir: Path) -> int:
    total = 0
    for p in sorted(labels_dir.glob("*.nii.gz")):
        total += len(annotated_slices(read_volume(p).array))
    return total


def run_demo(
    config: DemoConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    stream: TextIO | None = None,
    train_callback: Callable | None = None,
) -> DemoResult:
    """Run the demo loop; prints as it goes and returns every round's numbers.

    Parameters
    ----------
    config : DemoConfig, optional
    out_dir : path, optional
        Where the dataset, runs and predictions go (default: a new temporary folder).
    stream : text stream, optional
        Where to print (default stdout).
    train_callback : callable, optional
        Receives :class:`~barl_core.training.trainer.TrainProgress` (e.g. a progress bar).
    """
    import tempfile
    from dataclasses import replace

    import torch

    from barl_core.data.phantom import PHANTOM_CLASSES, PhantomConfig, make_phantom_dataset
    from barl_core.inference.model import load_model
    from barl_core.training.config import preset
    from barl_core.training.run import train

    cfg = (config or DemoConfig()).validate()
    stream = stream if stream is not None else sys.stdout
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="barl-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    t_start = time.perf_counter()
    phantom = PhantomConfig(shape=cfg.shape)
    print(f"barl demo: writing phantom cases of shape {cfg.shape} to {out}", file=stream)
    train_root = make_phantom_dataset(
        out / "train", cfg.n_train, config=phantom, labelled_cases=cfg.n_labelled,
        slices_per_case=cfg.initial_slices, seed=cfg.seed,
    )
    test_root = make_phantom_dataset(
        out / "test", cfg.n_test, config=phantom, labelled_cases=[], seed=cfg.seed + 1000,
    )
    images_dir, labels_dir, truth_dir = (train_root / s for s in ("imagesTr", "labelsTr", "groundtruth"))
    images = sorted(images_dir.glob("*.nii.gz"))
    test_images = sorted((test_root / "imagesTr").glob("*.nii.gz"))
    class_names = PHANTOM_CLASSES
    print(
        f"  {cfg.n_train} training cases ({cfg.n_labelled} with {cfg.initial_slices} labelled axial slices, "
        f"the rest unlabelled), {cfg.n_test} held-out test cases; classes: {', '.join(class_names[1:])}",
        file=stream,
    )
    base = preset(
        "quick", iterations=cfg.iterations, patch_size=tuple(cfg.patch_size),
        batch_labeled=cfg.batch_labeled, batch_unlabeled=cfg.batch_unlabeled,
        network={"base_channels": cfg.base_channels}, device=cfg.device, seed=cfg.seed,
        checkpoint_every=0, num_threads=cfg.num_threads, optimizer=cfg.optimizer, lr=cfg.lr,
        foreground_fraction=cfg.foreground_fraction,
    )
    base = base.with_classes(class_names).validate()
    ft_iters = cfg.finetune_iterations or max(1, cfg.iterations * 3 // 10)
    results: list[RoundResult] = []
    previous: Path | None = None
    # the random-pick baseline: its own label maps, starting from the same slices and model
    random_labels = out / "random_pick" / "labelsTr"
    if cfg.random_baseline and cfg.rounds > 1:
        import shutil

        shutil.copytree(labels_dir, random_labels, dirs_exist_ok=True)
    random_model: Path | None = None
    random_rng = np.random.default_rng(cfg.seed + 7919)
    for r in range(cfg.rounds):
        t0 = time.perf_counter()
        n_slices = _count_annotated(labels_dir)
        iters = cfg.iterations if previous is None else ft_iters
        what = "training" if previous is None else f"fine-tuning from round {r - 1}"
        print(f"\nround {r}: {what} on {n_slices} annotated slices for {iters} iterations", file=stream)
        lr = cfg.lr if previous is None or cfg.finetune_lr is None else cfg.finetune_lr
        run_cfg = replace(base, iterations=iters, lr=lr, seed=cfg.seed + r)
        result = train(run_cfg, images_dir, labels_dir, out / f"round_{r}", init_from=previous,
                       callback=train_callback)
        model = load_model(result.model_path, device=cfg.device)
        dice_by_class = _dice_scores(model, test_images, test_root / "groundtruth", class_names)
        mean = _mean_finite(dice_by_class.values())
        print(
            "  test Dice: " + ", ".join(f"{c} {_fmt(v)}" for c, v in dice_by_class.items()) + f"; mean {_fmt(mean)}",
            file=stream,
        )
        random_dice = None
        if random_labels.is_dir():
            if previous is None:  # round 0: one model for both
                random_model, random_dice = Path(result.model_path), mean
            else:
                t_random = time.perf_counter()
                rnd = train(run_cfg, images_dir, random_labels, out / "random_pick" / f"round_{r}",
                            init_from=random_model, callback=train_callback)
                random_model = Path(rnd.model_path)
                rmodel = load_model(random_model, device=cfg.device)
                random_dice = _mean_finite(_dice_scores(rmodel, test_images, test_root / "groundtruth",
                                                        class_names).values())
                del rmodel
                print(f"  random pick of as many slices, fine-tuned the same way: mean {_fmt(random_dice)} "
                      f"(suggestions {mean - random_dice:+.3f}; {time.perf_counter() - t_random:.0f} s)",
                      file=stream)
        picks: list[tuple[str, int, float]] = []
        random_picks: list[tuple[str, int, float]] = []
        if r < cfg.rounds - 1 and cfg.slices_per_round > 0:
            picks = _suggest(model, images, labels_dir, cfg.slices_per_round, stream, class_names)
            _reveal(picks, images_dir, labels_dir, truth_dir)
            if random_labels.is_dir():
                random_picks = _random_picks(images, random_labels, len(picks), random_rng)
                _reveal(random_picks, images_dir, random_labels, truth_dir)
        results.append(RoundResult(r, n_slices, iters, dice_by_class, mean, time.perf_counter() - t0,
                                   Path(result.model_path), picks, random_dice,
                                   [(n, z) for n, z, _ in random_picks]))
        previous = Path(result.model_path)
        del model
    total = time.perf_counter() - t_start
    print("\nDice on held-out phantom cases after each round:", file=stream)
    print(format_table(results, class_names), file=stream)
    last = results[-1]
    if last.gain is not None and last.round > 0:
        print(f"\nthe suggested slices vs as many random ones after round {last.round}: {last.gain:+.3f} mean "
              f"Dice (one seed on {cfg.n_test} test phantom(s): one run's gain is within the demo's noise, "
              "which across seeds moved it by up to 0.2; docs/benchmarks.md section 2 has the seeds and the "
              "benchmark)",
              file=stream)
    print(f"\ntotal {total:.0f} s; models, data and labels are in {out}", file=stream)
    return DemoResult(results, out, tuple(class_names), total)
