"""Shared pieces of the benchmark scripts: splits, sparse labels, runs, results files, tables.

Why one module: every benchmark must use the *same* split, the same way of hiding labels and
the same evaluation, otherwise the numbers of two scripts are not comparable. The engine work
itself (training, prediction, metrics) always goes through ``barl_core``'s public API; nothing
here re-implements it.

Datasets are handed to the engine the way a user hands them: a temporary MSD-layout folder
(``imagesTr/`` + ``labelsTr/``) in which a labelled case has a label file (whole, or a few
axial slices with the rest set to the ignore value 255) and an unlabelled case has none.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.data.labels import IGNORE_INDEX

__all__ = [
    "REPO_ROOT",
    "SHARED_DATA",
    "RESULTS_DIR",
    "SPLIT_SEED",
    "IGNORE_INDEX",
    "FOREGROUND_METRICS",
    "BenchCase",
    "Split",
    "make_split",
    "labelled_order",
    "choose_labelled",
    "foreground_slices",
    "sparsify",
    "load_msd_cases",
    "materialise",
    "build_train_config",
    "train_model",
    "iteration_times",
    "robust_iteration_time",
    "evaluate_model",
    "summarise_case_metrics",
    "machine_info",
    "ResultsStore",
    "markdown_table",
    "fmt_mean_sd",
    "mean_sd",
    "set_threads",
    "ensure_parent",
    "optional_path",
    "finish_dice_plot",
    "save_figure",
    "add_dataset_arguments",
    "add_model_arguments",
    "add_device_arguments",
    "add_output_arguments",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real data beside the checkout (read-only); absent in a user's clone.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
#: The constant that fixes every split: change it and the numbers are no longer comparable.
SPLIT_SEED = 20250504
#: Metric names reported per class, in the order of the tables.
FOREGROUND_METRICS = ("dice", "jaccard", "hd95", "asd")


# --------------------------------------------------------------------------------------------
# Cases, splits and sparse labels
# --------------------------------------------------------------------------------------------


@dataclass
class BenchCase:
    """One case with its *complete* ground truth (the benchmark decides what the engine sees).

    Attributes
    ----------
    name : str
        Case name (file name without extension).
    image : barl_core.io.volume.Volume
        The image with its geometry.
    truth : numpy.ndarray
        Full label map ``(z, y, x)``, uint8, classes ``0..K-1``.
    image_path : Path or None
        Source file, linked instead of rewritten when the dataset is materialised.
    """

    name: str
    image: Any
    truth: np.ndarray
    image_path: Path | None = None


@dataclass(frozen=True)
class Split:
    """A fixed test / pool split, written into every results file."""

    test: tuple[str, ...]
    pool: tuple[str, ...]
    seed: int = SPLIT_SEED

    def to_dict(self) -> dict:
        return {"seed": self.seed, "test": list(self.test), "pool": list(self.pool)}


def make_split(names: Iterable[str], n_test: int, seed: int = SPLIT_SEED) -> Split:
    """Shuffle the sorted names with a constant seed; the first ``n_test`` are the test set.

    Sorting first makes the split independent of directory listing order, so the same
    files give the same split on any machine.
    """
    ordered = sorted(set(names))
    if n_test >= len(ordered):
        raise ValueError(f"a test set of {n_test} leaves no training pool out of {len(ordered)} cases")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in perm]
    return Split(test=tuple(sorted(shuffled[:n_test])), pool=tuple(sorted(shuffled[n_test:])), seed=seed)


def labelled_order(pool: Sequence[str], seed: int = SPLIT_SEED) -> list[str]:
    """The fixed order in which pool cases become labelled (one constant-seeded permutation).

    A budget of N labelled cases takes the first N, so budgets are nested (the 5% cases are
    among the 10% cases) and every method and seed sees the same labelled cases: seeds vary
    the initialisation and the patch sampling, not the data.
    """
    ordered = sorted(pool)
    perm = np.random.default_rng(seed + 1).permutation(len(ordered))
    return [ordered[i] for i in perm]


def choose_labelled(pool: Sequence[str], fraction: float, seed: int = SPLIT_SEED) -> list[str]:
    """The labelled cases of a budget: the first ``round(fraction * len(pool))`` (at least 1)
    of :func:`labelled_order`, sorted.
    """
    n = max(1, int(round(fraction * len(pool))))
    return sorted(labelled_order(pool, seed)[:n])


def foreground_slices(truth: np.ndarray, n: int, axis: int = 0) -> list[int]:
    """``n`` slices along ``axis`` spread evenly through the foreground (as an annotator would).

    The slices sit at the ``(i + 0.5) / n`` quantiles of the slices that hold foreground, so
    one slice is the middle of the object and three are at 1/6, 1/2 and 5/6 of it. Volumes
    without foreground fall back to evenly spaced slices of the whole volume.
    """
    other = tuple(a for a in range(truth.ndim) if a != axis)
    fg = np.flatnonzero(np.any((truth > 0) & (truth != IGNORE_INDEX), axis=other))
    candidates = fg if fg.size else np.arange(truth.shape[axis])
    if n >= candidates.size:
        return [int(i) for i in candidates]
    pos = [(i + 0.5) / n * candidates.size for i in range(n)]
    picked = sorted({int(candidates[min(int(p), candidates.size - 1)]) for p in pos})
    return picked


def sparsify(truth: np.ndarray, slices: Iterable[int], axis: int = 0) -> np.ndarray:
    """A label map holding ``truth`` on the given slices and the ignore value 255 elsewhere."""
    out = np.full(truth.shape, IGNORE_INDEX, dtype=np.uint8)
    idx = [slice(None)] * truth.ndim
    for s in slices:
        idx[axis] = int(s)
        out[tuple(idx)] = truth[tuple(idx)]
    return out


def load_msd_cases(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    *,
    names: Iterable[str] | None = None,
    num_classes: int | None = None,
) -> dict[str, BenchCase]:
    """Read an MSD folder pair through :func:`barl_core.data.dataset.load_dataset`.

    Every case must have a full label map (this is the benchmark's ground truth).
    """
    from barl_core.data.dataset import load_dataset

    cases = load_dataset(images_dir, labels_dir, num_classes=num_classes)
    wanted = set(names) if names is not None else None
    out: dict[str, BenchCase] = {}
    for case in cases:
        if wanted is not None and case.name not in wanted:
            continue
        if case.labels is None:
            raise ValueError(f"{case.name}: the benchmark needs the full label map")
        out[case.name] = BenchCase(
            name=case.name,
            image=case.image,
            truth=np.asarray(case.labels).astype(np.uint8),
            image_path=Path(case.image_path) if case.image_path else None,
        )
    return out


def materialise(
    cases: Mapping[str, BenchCase],
    labels: Mapping[str, np.ndarray | None],
    out_dir: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write an MSD-layout training folder the engine reads like a user's dataset.

    Parameters
    ----------
    cases : mapping
        All cases that take part (labelled and unlabelled).
    labels : mapping
        What the engine may see per case: a label map (full or sparse, 255 = ignore) or
        ``None``/absent for an unlabelled case (no label file is written).
    out_dir : path
        Folder that receives ``labelsTr/`` (and ``imagesTr/`` unless ``images_dir`` is given).
    images_dir : path, optional
        A shared images folder (filled once, reused by every run: only labels differ between
        runs). Images already there are not rewritten; real files are linked, not copied.

    Returns
    -------
    (images_dir, labels_dir)
    """
    from barl_core.io.volume import write_labels, write_volume

    out = Path(out_dir)
    img_dir = Path(images_dir) if images_dir is not None else out / "imagesTr"
    lab_dir = out / "labelsTr"
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.nii.gz" for name in cases}
    for extra in img_dir.glob("*.nii.gz"):  # a shared folder may hold cases of another run
        if extra.name not in wanted:
            raise ValueError(f"{img_dir} holds {extra.name}, which is not part of this run")
    for name, case in cases.items():
        target = img_dir / f"{name}.nii.gz"
        if not target.exists():
            src = case.image_path
            if src is not None and src.is_file() and src.name.endswith(".nii.gz"):
                os.symlink(src.resolve(), target)  # the real data is read-only; never copy it
            else:
                write_volume(case.image, target, compress=False)
        lab_path = lab_dir / f"{name}.nii.gz"
        lab = labels.get(name)
        if lab is None:
            lab_path.unlink(missing_ok=True)
        else:
            write_labels(np.asarray(lab, dtype=np.uint8), case.image, lab_path, compress=True)
    return img_dir, lab_dir


# --------------------------------------------------------------------------------------------
# Training and evaluation through barl_core
# --------------------------------------------------------------------------------------------


#: Optimiser and learning rate of every benchmark run (see :func:`build_train_config`).
BENCH_OPTIMIZER = "adamw"
BENCH_LR = 3e-3


def build_train_config(
    *,
    method: str,
    iterations: int,
    patch: Sequence[int],
    base_channels: int,
    num_classes: int,
    seed: int,
    disable: Sequence[str] = (),
    batch_labeled: int = 2,
    batch_unlabeled: int = 2,
    device: str = "cpu",
    class_names: Sequence[str] | None = None,
    num_threads: int | None = None,
    log_every: int = 1,
    optimizer: str = BENCH_OPTIMIZER,
    lr: float = BENCH_LR,
    validation: Mapping[str, Any] | None = None,
    overrides: Mapping[str, float] | None = None,
) -> Any:
    """A :class:`barl_core.training.config.TrainConfig` for one benchmark run.

    Every method gets the same schedule (AdamW at ``BENCH_LR`` with the poly decay and
    ramp-up of the ``quick`` preset: on CPU-sized runs of a few hundred iterations, the
    design note's SGD at lr 0.01 leaves every method at foreground Dice ~0 on hippocampus),
    patch, batch and network width, so only the method differs between runs. Periodic
    checkpoints are off (only the final model is written): benchmarks never resume a run.
    ``validation`` holds :class:`barl_core.training.validator.ValidationConfig` fields
    (``every``, ``patience``); off by default. ``overrides`` changes method settings on top
    of the preset's: a :class:`barl_core.losses.config.LossConfig` field (``dpr``, ``pcbc``,
    ``dpr_threshold``, ...) or a top-level field (``cps_weight``, ``consistency_weight``).
    """
    import dataclasses

    from barl_core.losses.config import LossConfig
    from barl_core.training.config import default_class_names, preset

    loss_fields = {f.name for f in dataclasses.fields(LossConfig)}
    overrides = dict(overrides or {})
    losses = {k: v for k, v in overrides.items() if k in loss_fields}
    top = {k: v for k, v in overrides.items() if k not in loss_fields}

    names = tuple(class_names) if class_names else default_class_names(num_classes)
    return preset(
        "quick",
        method=method,
        iterations=int(iterations),
        patch_size=tuple(int(p) for p in patch),
        batch_labeled=int(batch_labeled),
        batch_unlabeled=int(batch_unlabeled),
        seed=int(seed),
        device=device,
        disable=tuple(disable),
        checkpoint_every=0,
        log_every=int(log_every),
        class_names=names,
        num_threads=num_threads,
        optimizer=optimizer,
        lr=float(lr),
        network={"base_channels": int(base_channels), "num_classes": len(names)},
        validation=dict(validation or {}),
        **({"losses": losses} if losses else {}),
        **top,
    )


def train_model(
    config: Any,
    images_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    *,
    init_from: Path | None = None,
    callback: Callable[[Any], None] | None = None,
) -> tuple[Path, float]:
    """Train with :func:`barl_core.training.run.train`; return (model path, wall seconds)."""
    from barl_core.training.run import train

    t0 = time.perf_counter()
    result = train(config, images_dir, labels_dir, out_dir, init_from=init_from, callback=callback)
    return Path(result.model_path), time.perf_counter() - t0


def train_with_curve(
    config: Any,
    images_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    *,
    validation: Mapping[str, BenchCase] | None = None,
    validation_labels: Mapping[str, np.ndarray] | None = None,
    diagnostic: Mapping[str, tuple[BenchCase, np.ndarray]] | None = None,
) -> tuple[Any, float, list[dict]]:
    """Train with held-out validation cases; return (TrainResult, wall seconds, learning curve).

    The curve has one point per validation: ``{"iteration", "seconds", "dice"}``, seconds
    counted from the start of the call (data loading included). ``validation_labels`` are the
    label maps the validation sees (e.g. sparse); the cases' full truth otherwise.
    ``diagnostic`` maps labelled training cases to the labels the engine saw (sparse): each
    branch's Dice on their *unannotated* voxels is added to the curve (``pseudo_dice_a/_b``).
    """
    from barl_core.data.dataset import Case
    from barl_core.training.run import train

    val_cases = None
    if validation:
        val_cases = [
            Case(name, c.image, np.asarray((validation_labels or {}).get(name, c.truth), np.uint8),
                 c.image_path or Path(f"{name}.nii.gz"), None)
            for name, c in validation.items()
        ]
    diag_cases = None
    if diagnostic:
        diag_cases = [
            Case(name, c.image, np.where(np.asarray(seen) == IGNORE_INDEX, c.truth, IGNORE_INDEX).astype(np.uint8),
                 c.image_path or Path(f"{name}.nii.gz"), None)
            for name, (c, seen) in diagnostic.items()
        ]
    t0_epoch, t0 = time.time(), time.perf_counter()
    result = train(config, images_dir, labels_dir, out_dir, validation_cases=val_cases, diagnostic_cases=diag_cases)
    seconds = time.perf_counter() - t0
    curve = [{"iteration": int(r["iteration"]), "seconds": round(float(r["time"]) - t0_epoch, 2),
              "dice": float(r["val_dice"]),
              **{k[4:]: float(v) for k, v in r.items() if k.startswith("val_pseudo_dice_")},
              **_term_diagnostics(r)}
             for r in result.history if "val_dice" in r]
    return result, seconds, curve


def _term_diagnostics(row: Mapping[str, Any]) -> dict[str, float]:
    """A validation row's per-term gradient norms, weights and cosines, and the terms' losses."""
    terms = [k[len("gradnorm_"):] for k in row if k.startswith("gradnorm_")]
    out = {k: float(v) for k, v in row.items() if k.startswith(("gradnorm_", "gradweight_", "gradcos_"))}
    out.update({f"loss_{t}": float(row[t]) for t in terms if t in row})
    return out


def iteration_times(
    config: Any,
    cases: Mapping[str, BenchCase],
    labels: Mapping[str, np.ndarray | None],
    run_dir: Path,
    *,
    save_to: Path | None = None,
) -> list[float]:
    """Wall seconds of each of ``config.iterations`` training steps, measured in memory.

    Uses :func:`barl_core.training.prepare.prepare_training_data` and :class:`barl_core.training.trainer.Trainer`
    (its ``train_step`` hook) so the timing holds the step only (sampling, forward, backward,
    optimiser), not set-up, logging or checkpoint writes. CUDA work is synchronised before
    each clock read. ``save_to`` writes the resulting checkpoint there.
    """
    import torch

    from barl_core.data.dataset import Case
    from barl_core.training.prepare import prepare_training_data
    from barl_core.training.trainer import Trainer

    engine_cases = [
        Case(name, case.image, None if labels.get(name) is None else np.asarray(labels[name], np.uint8),
             case.image_path or Path(f"{name}.nii.gz"), None)
        for name, case in cases.items()
    ]
    volumes, stats, names = prepare_training_data(engine_cases, config)
    trainer = Trainer(config.with_classes(names), volumes, run_dir, norm_stats=stats)
    trainer.initialize()
    cuda = trainer.device.type == "cuda"
    times = []
    for it in range(config.iterations):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.train_step(it)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if save_to is not None:  # a (barely trained) model, e.g. to time prediction
        trainer.save_checkpoint(save_to)
    return times


def robust_iteration_time(times: Sequence[float], warmup: int = 1) -> float:
    """Median iteration time after dropping ``warmup`` iterations (set-up, allocator warm-up)."""
    kept = list(times[warmup:]) or list(times)
    if not kept:
        raise ValueError("no iteration was timed")
    return float(np.median(kept))


def evaluate_model(
    model_path: str | os.PathLike,
    cases: Mapping[str, BenchCase],
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    voxel_units: bool = False,
    device: str = "cpu",
) -> dict:
    """Predict every case with :func:`barl_core.inference.predict.predict_volume`, score with
    :func:`barl_core.evaluation.metrics.evaluate_case`.

    Parameters
    ----------
    voxel_units : bool
        Distances in voxels (the literature's LA protocol) instead of mm: the image is scored
        on a unit-spacing grid.

    Returns
    -------
    dict
        ``{"per_case": {name: {class: {metric: value}}}, "mean": {class: {metric: value}},
        "seconds": float}``; the mean is over cases (NaN distances, e.g. a class missed
        entirely, are left out of the distance means and counted in ``"missed"``).
    """
    from barl_core.evaluation.metrics import evaluate_case
    from barl_core.inference.predict import load_model, predict_volume

    t0 = time.perf_counter()
    model = load_model(model_path, device=device)
    names = list(class_names) if class_names else ["background"] + [f"class_{i}" for i in range(1, num_classes)]
    classes = {i: names[i] for i in range(1, num_classes)}
    per_case: dict[str, dict] = {}
    for name, case in cases.items():
        pred = predict_volume(model, case.image)
        spacing = (1.0, 1.0, 1.0) if voxel_units else tuple(case.image.spacing)
        res = evaluate_case(pred.labels, case.truth, spacing=spacing, classes=classes)
        per_case[name] = {
            cls: {m: vals[m] for m in FOREGROUND_METRICS if m in vals}
            for cls, vals in res["classes"].items()
        }
    return {
        "per_case": per_case,
        "mean": summarise_case_metrics(per_case),
        "seconds": time.perf_counter() - t0,
    }


def summarise_case_metrics(per_case: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict:
    """Mean over cases per class and metric (non-finite values skipped, their count kept)."""
    classes: dict[str, dict[str, list[float]]] = {}
    for metrics in per_case.values():
        for cls, vals in metrics.items():
            for m, v in vals.items():
                if isinstance(v, (int, float)):
                    classes.setdefault(str(cls), {}).setdefault(m, []).append(float(v))
    out: dict[str, dict[str, float]] = {}
    for cls, by_metric in classes.items():
        out[cls] = {}
        for m, vals in by_metric.items():
            arr = np.asarray(vals, dtype=float)
            finite = arr[np.isfinite(arr)]
            out[cls][m] = float(finite.mean()) if finite.size else float("nan")
            if finite.size < arr.size:
                out[cls][f"{m}_missed"] = int(arr.size - finite.size)
    return out


# --------------------------------------------------------------------------------------------
# Results files, machine information, tables
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Where and how a benchmark ran: CPU model, cores, torch, GPU, date, exact command."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
    }
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        info["usable_cores"] = os.cpu_count()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        info["torch"] = None
        info["gpu"] = None
    try:
        import subprocess

        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        info["git_commit"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _clean_nan(obj: Any) -> Any:
    """JSON has no NaN: write ``null`` so any reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_nan(v) for v in obj]
    return obj


@dataclass
class ResultsStore:
    """A results JSON file rewritten (atomically) after every run, so a partial run leaves a table.

    Layout: ``{"benchmark", "config", "split", "sessions": [machine_info + timing],
    "runs": {key: record}, "summary": {...}}``.
    """

    path: Path
    benchmark: str
    data: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        benchmark: str,
        *,
        resume: bool,
        config: Mapping,
        must_match: Sequence[str] = (),
    ) -> ResultsStore:
        """Start a results file, or continue one with ``resume``.

        ``must_match`` names config keys that must equal the stored ones when resuming
        (runs with another schedule or network must not be mixed into one table).
        """
        p = Path(path)
        data: dict = {}
        if resume and p.is_file():
            data = json.loads(p.read_text())
            if data.get("benchmark") not in (None, benchmark):
                raise ValueError(f"{p} holds results of {data.get('benchmark')!r}, not {benchmark!r}")
            old = data.get("config", {})
            new = _clean_nan(json.loads(json.dumps(dict(config), default=_json_default)))
            diff = [k for k in must_match if k in old and old.get(k) != new.get(k)]
            if diff:
                raise SystemExit(
                    f"{p}: cannot resume, the stored runs used other settings for "
                    + ", ".join(f"{k} ({old.get(k)} vs {new.get(k)})" for k in diff)
                    + "; use another --out or drop --resume"
                )
        data.setdefault("benchmark", benchmark)
        data.setdefault("runs", {})
        data.setdefault("sessions", [])
        data["config"] = dict(config)
        session = machine_info()
        session["elapsed_s"] = 0.0
        session["finished"] = False
        data["sessions"].append(session)
        store = cls(path=p, benchmark=benchmark, data=data)
        store.save()
        return store

    @property
    def runs(self) -> dict:
        return self.data["runs"]

    def has(self, key: str) -> bool:
        return key in self.runs

    def add_run(self, key: str, record: Mapping) -> None:
        self.runs[key] = dict(record)
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self, *, finished: bool = False) -> None:
        session = self.data["sessions"][-1]
        session["elapsed_s"] = round(time.perf_counter() - self._t0, 2)
        session["finished"] = finished
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(_clean_nan(self.data), indent=1, default=_json_default) + "\n")
        os.replace(tmp, self.path)


def mean_sd(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, sample sd (0 for one value) and count over the finite values."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan"), 0
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), sd, int(arr.size)


def fmt_mean_sd(values: Iterable[float | None], digits: int = 3) -> str:
    """``"0.812 ± 0.010"``; one value prints bare; nothing prints ``"n/a"``."""
    m, sd, n = mean_sd(values)
    if n == 0:
        return "n/a"
    if n == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (also readable as plain text in a terminal)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"  # noqa: E731
    out = [line(list(headers)), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def set_threads(n: int | None) -> None:
    """Pin torch's intra-op threads (``None`` keeps torch's default: all cores)."""
    if n:
        import torch

        torch.set_num_threads(int(n))


def parse_parts_and_methods(p: argparse.ArgumentParser, args: argparse.Namespace,
                            parts: Sequence[str], methods: Sequence[str]) -> None:
    """Turn ``args.parts``/``args.methods`` (comma lists) into lists; unknown names are a usage error."""
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.methods = [s.strip() for s in args.methods.split(",") if s.strip()]
    bad = sorted(set(args.parts) - set(parts)) + sorted(set(args.methods) - set(methods))
    if bad:
        p.error(f"unknown part(s)/method(s): {', '.join(bad)}")


def optional_path(value: str) -> Path | None:
    """Argparse type: an empty string means "none" (``--plot ''``)."""
    return Path(value) if value else None


def finish_dice_plot(fig: Any, ax: Any, path: str | os.PathLike, *, xlabel: str, title: str,
                     **legend: Any) -> None:
    """Label a Dice-against-effort plot the one way every benchmark does, and save it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean foreground Dice (test set)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
    save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Lay out, write (120 dpi, parent folders made) and close a matplotlib figure.

    Closing matters: a long benchmark draws several plots and pyplot keeps every open figure.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    ensure_parent(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def temp_work_dir(prefix: str, work_dir: str | os.PathLike | None) -> tempfile.TemporaryDirectory:
    """A temporary folder for training runs, inside ``--work-dir`` (created if missing)."""
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=work_dir)


def ensure_parent(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------------------------
# Command-line options shared by the benchmark scripts
# --------------------------------------------------------------------------------------------


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--data``, ``--n-test`` and ``--seeds``.

    The Dice benchmarks must agree on the data folder, the fixed test split and the seeds, or their
    numbers are not comparable; one definition keeps the defaults from drifting apart.
    """
    p.add_argument("--data", type=Path, default=SHARED_DATA / "hippocampus",
                   help="MSD folder with imagesTr/ and labelsTr/ (default: ../shared/data/hippocampus)")
    p.add_argument("--n-test", type=int, default=40, help="test cases of the fixed split (default 40)")
    p.add_argument("--seeds", default="0,1", help="training seeds (default 0,1)")


def add_model_arguments(p: argparse.ArgumentParser, *, patch_help: str | None = None,
                        base_help: str | None = None, batches: bool = False) -> None:
    """Add ``--patch Z Y X`` and ``--base-channels`` (and the two batch sizes with ``batches``).

    The defaults are ``None`` so that each script fills in its own (and its ``--smoke`` sizes)
    after parsing; only the help texts differ between the scripts.
    """
    p.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None, help=patch_help)
    p.add_argument("--base-channels", type=int, default=None, help=base_help)
    if batches:
        p.add_argument("--batch-labeled", type=int, default=2)
        p.add_argument("--batch-unlabeled", type=int, default=2)


def add_device_arguments(p: argparse.ArgumentParser, *, default: str | None = "cpu",
                         device_help: str | None = None) -> None:
    """Add ``--device`` and ``--threads`` (torch threads, see :func:`set_threads`)."""
    p.add_argument("--device", default=default, help=device_help)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def add_output_arguments(p: argparse.ArgumentParser, name: str, *, resume_help: str | None = None,
                         work_dir_help: str | None = None) -> None:
    """Add ``--out``, ``--plot``, ``--resume`` (only with ``resume_help``), ``--work-dir`` and ``--smoke``.

    ``name`` is the stem of the default ``benchmarks/results/NAME.json`` and ``NAME.png``, so every
    script writes where ``benchmarks/report.py`` looks.
    """
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json")
    p.add_argument("--plot", type=optional_path, default=RESULTS_DIR / f"{name}.png",
                   help="PNG plot ('' for none)")
    if resume_help is not None:
        p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--work-dir", type=Path, default=None, help=work_dir_help)
    p.add_argument("--smoke", action="store_true", help="tiny sizes for a quick check (tests)")
