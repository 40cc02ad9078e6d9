"""The plan of a label-efficiency benchmark: budgets, runs, their keys, and what each run sees.

Why apart: a run's key (:attr:`RunSpec.key`) names it in the results file that ``--resume``,
``merge_results.py`` and ``report.py`` read back, so how runs are named and planned must not
change when the loop that runs them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks import common

from .dataset import Dataset

__all__ = ["METHODS", "ABLATION_TERMS", "SPARSE_SLICES", "Budget", "RunSpec", "parse_overrides",
           "make_budgets", "build_plan", "training_labels", "validation_names"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
ABLATION_TERMS = ("dpr", "pcbc", "region", "instance")
SPARSE_SLICES = 3


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
