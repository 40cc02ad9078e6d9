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
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/label_efficiency.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common import BenchCase  # noqa: E402

__all__ = ["RunSpec", "Budget", "build_plan", "summarise", "render_tables", "render_per_seed", "main", "parse_args"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
ABLATION_TERMS = ("dpr", "pcbc", "region", "instance")
SPARSE_SLICES = 3
#: Defaults measured on 2 cores of an Intel Xeon (see docs/benchmarks.md): 42 runs fit ~1 h.
DEFAULT_ITERATIONS = 250
DEFAULT_PATCH = (24, 32, 24)
DEFAULT_BASE = 8


@dataclass(frozen=True)
class Budget:
    """A labelled budget: a fraction of the pool (hippocampus) or a case count (LA)."""

    label: str
    n_labelled: int
    fraction: float


@dataclass(frozen=True)
class RunSpec:
    """One training + evaluation run of the plan."""

    group: str  # "main", "upper" or "ablation"
    budget: Budget
    setting: str  # "full" or "sparse"
    method: str
    seed: int
    disable: tuple[str, ...] = ()
    overrides: tuple[tuple[str, float], ...] = ()

    @property
    def variant(self) -> str:
        """Method name as tables show it (``barl -dpr`` for an ablation, ``barl [dpr=0.5]`` with overrides)."""
        if self.group == "upper":
            name = "full-supervision"
        elif self.disable:
            name = f"{self.method} -" + ",".join(self.disable)
        else:
            name = self.method
        return f"{name} [{_overrides_text(self.overrides)}]" if self.overrides else name

    @property
    def key(self) -> str:
        dis = f"-no-{'-'.join(self.disable)}" if self.disable else ""
        ovr = f"-set-{_overrides_text(self.overrides)}" if self.overrides else ""
        return f"{self.group}/{self.setting}/{self.budget.label}/{self.method}{dis}{ovr}/seed{self.seed}"


def _overrides_text(overrides: Sequence[tuple[str, float | str]]) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in overrides)


def parse_overrides(text: str) -> tuple[tuple[str, float | str], ...]:
    """``"dpr=0.5,cps_weight=0.5"`` -> ``(("cps_weight", 0.5), ("dpr", 0.5))`` (sorted: one key per setting).

    Values are numbers, except the fields that name a mode (``region_mode=contrast``).
    """
    pairs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set: expected NAME=VALUE, got {item!r}")
        name = name.strip()
        if name.endswith("_mode"):
            pairs.append((name, value.strip()))
            continue
        try:
            pairs.append((name, float(value)))
        except ValueError:
            raise SystemExit(f"--set: {name} needs a number, got {value!r}") from None
    return tuple(sorted(pairs))


@dataclass
class Dataset:
    """Everything the plan needs: cases, split, class names, how distances are measured."""

    name: str
    cases: dict[str, BenchCase]
    test: list[str]
    pool: list[str]
    class_names: tuple[str, ...]
    voxel_units: bool = False
    pool_order: list[str] = field(default_factory=list)  # labelled = first N of this order


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


def make_budgets(values: Sequence[str], pool_size: int) -> list[Budget]:
    """``"0.05"`` -> 5% of the pool; ``"8"`` (an integer >= 1) -> 8 cases."""
    out = []
    for v in values:
        x = float(v)
        if x < 1:
            n = max(1, int(round(x * pool_size)))
            out.append(Budget(label=f"{x * 100:g}%", n_labelled=n, fraction=x))
        else:
            n = int(x)
            out.append(Budget(label=f"{n}lab", n_labelled=n, fraction=n / pool_size))
    return out


def build_plan(
    budgets: Sequence[Budget],
    settings: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    upper: bool,
    ablation: bool,
    ablation_budget: Budget | None,
    pool_size: int,
    ablation_terms: Sequence[str] = ABLATION_TERMS,
    overrides: tuple[tuple[str, float], ...] = (),
) -> list[RunSpec]:
    """All runs, seed-major: a run stopped half-way still holds complete single-seed tables."""
    plan: list[RunSpec] = []
    full_pool = Budget(label="100%", n_labelled=pool_size, fraction=1.0)
    for seed in seeds:
        for budget in budgets:
            for setting in settings:
                for method in methods:
                    plan.append(RunSpec("main", budget, setting, method, seed, overrides=overrides))
        if upper:
            plan.append(RunSpec("upper", full_pool, "full", "supervised", seed, overrides=overrides))
        if ablation and ablation_budget is not None:
            for term in ablation_terms:
                plan.append(RunSpec("ablation", ablation_budget, "sparse", "barl", seed, (term,), overrides))
    return plan


def training_labels(ds: Dataset, spec: RunSpec) -> dict:
    """What the engine sees in a run: full or sparse maps for the labelled cases, else nothing."""
    labelled = ds.pool_order[: spec.budget.n_labelled]
    out: dict = {}
    for name in labelled:
        truth = ds.cases[name].truth
        if spec.setting == "sparse":
            out[name] = common.sparsify(truth, common.foreground_slices(truth, SPARSE_SLICES))
        else:
            out[name] = truth
    return out


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


#: Class names of datasets whose folder carries no dataset.json naming them.
KNOWN_CLASS_NAMES = {"hippocampus": ("background", "anterior", "posterior")}


def load_msd(data_dir: Path, n_test: int) -> Dataset:
    """An MSD folder with *full* labels: ``labelsTr/``, or ``groundtruth/`` when present (the
    layout :func:`barl_core.data.phantom.make_phantom_dataset` writes, whose ``labelsTr`` is sparse).
    """
    truth_dir = data_dir / "groundtruth" if (data_dir / "groundtruth").is_dir() else data_dir / "labelsTr"
    cases = common.load_msd_cases(data_dir / "imagesTr", truth_dir)
    if len(cases) < 3:
        raise SystemExit(f"{data_dir}: needs at least 3 labelled cases, found {len(cases)}")
    split = common.make_split(cases, n_test=n_test)
    num_classes = int(max(int(c.truth.max()) for c in cases.values())) + 1
    pool = list(split.pool)
    class_names = _class_names(data_dir, num_classes)
    return Dataset(
        name=data_dir.name,
        cases=cases,
        test=list(split.test),
        pool=pool,
        class_names=class_names,
        pool_order=common.labelled_order(pool),
    )


def _class_names(data_dir: Path, num_classes: int) -> tuple[str, ...]:
    """From ``dataset.json`` (MSD ``{"0": "background"}`` or nnU-Net ``{"background": 0}``),
    a known dataset, or ``background, class_1, ...``.
    """
    import json

    from barl_core.training.config import default_class_names

    meta_path = data_dir / "dataset.json"
    if meta_path.is_file():
        labels = json.loads(meta_path.read_text()).get("labels", {})
        by_index: dict[int, str] = {}
        for k, v in labels.items():
            if str(k).isdigit():
                by_index[int(k)] = str(v)
            elif isinstance(v, int):
                by_index[v] = str(k)
        n = 0
        while n in by_index:
            n += 1
        if n >= num_classes:  # the file may name classes absent from these few cases
            return tuple(by_index[i] for i in range(n))
    known = KNOWN_CLASS_NAMES.get(data_dir.name)
    if known and len(known) == num_classes:
        return known
    return tuple(default_class_names(num_classes))


def load_la(root: Path) -> Dataset:
    from benchmarks.la_h5 import LA_CLASS_NAMES, load_la_cases

    cases, train, test = load_la_cases(root)
    return Dataset(
        name="LA2018-UAMT",
        cases=cases,
        test=test,
        pool=train,
        class_names=LA_CLASS_NAMES,
        voxel_units=True,
        pool_order=list(train),  # the literature labels the first N of train.list
    )


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _class_keys(ds_classes: Sequence[str]) -> list[str]:
    return [str(c) for c in ds_classes[1:]]


def _metric(run: dict, cls: str, metric: str) -> float | None:
    mean = run.get("metrics", {})
    # metrics may be keyed by class name or index; try both
    for key in (cls, str(cls)):
        if key in mean and metric in mean[key]:
            return mean[key][metric]
    return None


def summarise(runs: dict, class_names: Sequence[str]) -> list[dict]:
    """Group runs over seeds: one row per (group, setting, budget, variant), mean ± sd."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs.values():
        k = (run["group"], run["setting"], run["budget"], run["variant"])
        groups.setdefault(k, []).append(run)
    rows = []
    for (group, setting, budget, variant), items in groups.items():
        row = {
            "group": group,
            "setting": setting,
            "budget": budget,
            "budget_fraction": items[0]["budget_fraction"],
            "variant": variant,
            "seeds": sorted(r["seed"] for r in items),
            "metrics": {},
        }
        for cls in _class_keys(class_names):
            row["metrics"][cls] = {}
            for m in common.FOREGROUND_METRICS:
                vals = [_metric(r, cls, m) for r in items]
                mu, sd, n = common.mean_sd(vals)
                row["metrics"][cls][m] = {"mean": mu, "sd": sd, "n": n}
        fg = [_mean_fg_dice(r, class_names) for r in items]
        mu, sd, n = common.mean_sd(fg)
        row["mean_fg_dice"] = {"mean": mu, "sd": sd, "n": n}
        row["train_seconds"] = common.mean_sd(r.get("train_seconds") for r in items)[0]
        rows.append(row)
    order = {"main": 0, "upper": 1, "ablation": 2}
    rank = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (order.get(r["group"], 9), r["setting"], r["budget_fraction"],
                             rank.get(r["variant"], len(rank)), r["variant"]))
    return rows


def _mean_fg_dice(run: dict, class_names: Sequence[str]) -> float | None:
    vals = [_metric(run, c, "dice") for c in _class_keys(class_names)]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(stat: dict, digits: int) -> str:
    if not stat or not stat.get("n"):
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def render_tables(summary: list[dict], class_names: Sequence[str], *, jaccard: bool = False) -> str:
    """Markdown: the main table (with the upper bound) and, if present, the ablation table."""
    classes = _class_keys(class_names)
    metrics = [("dice", "Dice", 3)] + ([("jaccard", "Jaccard", 3)] if jaccard else [])
    metrics += [("hd95", "HD95", 2), ("asd", "ASD", 2)]
    headers = ["setting", "labelled", "method", "seeds"]
    for _key, title, _ in metrics:
        for c in classes:
            headers.append(f"{title} {c}" if len(classes) > 1 else title)
    out = []
    for group, title in (("main", "Label efficiency"), ("ablation", "Ablation (BARL terms off)")):
        rows = [r for r in summary if r["group"] == group or (group == "main" and r["group"] == "upper")]
        if not rows:
            continue
        if group == "ablation":  # the complete method on the same setting, as the reference row
            ref = [r for r in summary if r["group"] == "main" and r["variant"] == "barl"
                   and r["setting"] == "sparse" and r["budget"] == rows[0]["budget"]]
            rows = ref + rows
        table = []
        for r in rows:
            line = [r["setting"], r["budget"], r["variant"], str(len(r["seeds"]))]
            for key, _, digits in metrics:
                for c in classes:
                    line.append(_fmt(r["metrics"].get(c, {}).get(key, {}), digits))
            table.append(line)
        out.append(f"### {title}\n\n" + common.markdown_table(headers, table))
    return "\n\n".join(out)


def render_per_seed(runs: dict, class_names: Sequence[str], reference: str = "barl") -> str:
    """Markdown: mean foreground Dice of every run by seed, and each variant's paired gap to ``reference``.

    Why: a mean ± sd per method hides whether one method wins seed by seed; the gap taken on
    the same seed (same labelled cases, same initialisation seed) removes the spread the seeds
    share, so a gap larger than its own sd is a result and one smaller is not.
    """
    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    for run in runs.values():
        dice = _mean_fg_dice(run, class_names)
        if dice is None:
            continue
        key = (run["setting"], float(run.get("budget_fraction", 0.0)), run["budget"])
        groups.setdefault(key, {}).setdefault(run["variant"], {})[int(run["seed"])] = dice
    out = []
    rank = {m: i for i, m in enumerate(METHODS)}
    for (setting, _fraction, budget), by_variant in sorted(groups.items()):
        seeds = sorted({s for v in by_variant.values() for s in v})
        ref = by_variant.get(reference, {})
        headers = ["method"] + [f"seed {s}" for s in seeds] + ["mean ± sd", f"{reference} minus it (paired)"]
        rows = []
        for variant in sorted(by_variant, key=lambda v: (rank.get(v, len(rank)), v)):
            vals = by_variant[variant]
            line = [variant] + [f"{vals[s]:.3f}" if s in vals else "" for s in seeds]
            line.append(common.fmt_mean_sd(vals.values()))
            paired = [ref[s] - vals[s] for s in seeds if s in vals and s in ref]
            line.append("" if variant == reference or not paired
                        else f"{common.fmt_mean_sd(paired)} (n={len(paired)})")
            rows.append(line)
        out.append(f"#### Per seed: {setting}, {budget} labelled (mean foreground Dice)\n\n"
                   + common.markdown_table(headers, rows))
    return "\n\n".join(out)


def plot(summary: list[dict], path: Path, title: str) -> None:
    """Mean foreground Dice against the labelled budget, one line per method and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    main = [r for r in summary if r["group"] == "main"]
    variants = sorted({(r["variant"], r["setting"]) for r in main})
    colours = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for variant, setting in variants:
        pts = sorted((r["budget_fraction"] * 100, r["mean_fg_dice"]) for r in main
                     if r["variant"] == variant and r["setting"] == setting)
        pts = [(x, s) for x, s in pts if s.get("n")]
        if not pts:
            continue
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["sd"] for p in pts],
                    marker="o" if setting == "full" else "s", linestyle="-" if setting == "full" else "--",
                    color=colours.get(variant, None), capsize=3, label=f"{variant} ({setting})")
    for r in summary:
        if r["group"] == "upper" and r["mean_fg_dice"].get("n"):
            ax.axhline(r["mean_fg_dice"]["mean"], color="k", linestyle=":", label="all labels (supervised)")
    common.finish_dice_plot(fig, ax, path, xlabel="labelled cases (% of training pool)", title=title,
                            fontsize=7, ncol=2)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


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
    estimate = _estimate(todo, ds, args)
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


def validation_names(ds: Dataset, n: int, budgets: Sequence[Budget]) -> list[str]:
    """The last ``n`` cases of the labelled order: held out of every run (upper bound included).

    Raises
    ------
    SystemExit
        They would overlap a labelled budget.
    """
    if n <= 0:
        return []
    names = list(ds.pool_order[-n:])
    largest = max((b.n_labelled for b in budgets), default=0)
    if len(ds.pool_order) - n < largest:
        raise SystemExit(f"--val-cases {n} would take cases of the {largest}-case labelled budget")
    return sorted(names)


def plot_curves(runs: dict, path: Path, title: str) -> None:
    """Validation Dice against iterations and wall time, one line per run, a colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours: dict[str, str] = {}
    for _key, run in sorted(runs.items()):
        curve = run.get("curve") or []
        if not curve:
            continue
        name = f"{run['variant']} ({run['setting']} {run['budget']})"
        label = None if name in colours else name  # one legend entry per method and setting
        colour = colours.setdefault(name, f"C{len(colours) % 10}")
        its = [p["iteration"] for p in curve]
        secs = [p["seconds"] / 60 for p in curve]
        dice = [p["dice"] for p in curve]
        axes[0].plot(its, dice, color=colour, label=label, alpha=0.8)
        axes[1].plot(secs, dice, color=colour, alpha=0.8)
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("wall time (min, shared 2-core machine)")
    axes[0].set_ylabel("validation mean foreground Dice")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    common.save_figure(fig, path)


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
    record["mean_fg_dice"] = _mean_fg_dice(record, ds.class_names)
    return record


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


def _estimate(todo: Sequence[RunSpec], ds: Dataset, args: argparse.Namespace) -> float:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
