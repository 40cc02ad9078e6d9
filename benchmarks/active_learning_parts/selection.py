"""The slices each strategy asks the annotator to label, across the annotated cases.

Why apart: the one place the benchmark calls the product's rankers; the rounds call it with the
current model, and a test can call it on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.common import BenchCase

__all__ = ["RANKING_STRATEGIES", "DEFAULT_OVERLAP", "select_slices"]

#: The strategies that are presets of the product's ranking (:data:`barl_core.active.ranking.RANKING_PRESETS`).
RANKING_STRATEGIES = ("focused", "focused2", "focused3")
#: Sliding-window overlap of every prediction here (selection and test): the engine's default;
#: at the 32x48x32 window a hippocampus case needs 8 windows at 0.25 or 0.5 alike.
DEFAULT_OVERLAP = 0.5


def select_slices(
    model_path: Path,
    cases: dict[str, BenchCase],
    annotated: dict[str, set[int]],
    *,
    strategy: str,
    k: int,
    seed: int,
    device: str = "cpu",
    overlap: float = DEFAULT_OVERLAP,
    features: bool = True,
) -> list[tuple[str, int, float]]:
    """The ``k`` best ``(case, axial slice, score)`` across cases, by ``strategy``.

    Each case is predicted with the current model; :func:`barl_core.active.suggest.suggest_slices`
    ranks its slices (skipping annotated ones, given as a sparse label map) and the per-case
    candidates are merged by score. Scores of different cases are comparable because every
    strategy scores a slice by a per-voxel mean (disagreement or entropy) or a uniform draw.
    ``focused`` ranks all cases at once (see :func:`_select_focused`), with the per-slice
    pooled features of the same prediction when ``features`` is true.
    """
    from barl_core.active.suggest import suggest_slices
    from barl_core.inference.predict import load_model, predict_volume

    model = load_model(model_path, device=device)
    if strategy in RANKING_STRATEGIES:
        return _select_focused(model, cases, annotated, k=k, overlap=overlap, features=features, preset=strategy)
    candidates: list[tuple[float, str, int]] = []
    for i, (name, case) in enumerate(sorted(cases.items())):
        pred = predict_volume(model, case.image, return_probabilities=(strategy == "entropy"), overlap=overlap)
        labels = common.sparsify(case.truth, annotated[name])
        picks = suggest_slices(
            pred.disagreement,
            labels=labels,
            axis=0,
            top_k=k,
            min_gap=1,
            strategy=strategy,
            **_strategy_kwargs(strategy, pred, seed * 1000 + i),
        )
        for s in picks:
            if int(s.index) in annotated[name]:
                raise AssertionError(f"suggest_slices re-picked annotated slice {s.index} of {name}")
            candidates.append((float(s.score), name, int(s.index)))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(name, idx, score) for score, name, idx in candidates[:k]]


def _select_focused(model, cases: dict[str, BenchCase], annotated: dict[str, set[int]], *,
                    k: int, overlap: float = DEFAULT_OVERLAP, features: bool = True,
                    preset: str = "focused") -> list[tuple[str, int, float]]:
    """The product's ranking (:func:`barl_core.active.ranking.rank_slices`, configured by the
    named ``preset`` of :data:`~barl_core.active.ranking.RANKING_PRESETS`) over all cases at
    once: it needs every case's prediction, disagreement and annotated slices together,
    because its coverage rules (z-gap, case spread, class balance, feature space) span cases.
    The per-slice features come out of the same sliding-window pass.
    """
    from barl_core.active.ranking import RANKING_PRESETS, CaseInputs, rank_slices
    from barl_core.inference.predict import predict_volume

    inputs = []
    for name, case in sorted(cases.items()):
        pred = predict_volume(model, case.image, overlap=overlap, return_features=features)
        inputs.append(CaseInputs(name, pred.disagreement, pred.labels,
                                 common.sparsify(case.truth, annotated[name]),
                                 features=pred.slice_features))
    picks = rank_slices(inputs, top_k=k, num_classes=len(model.class_names), class_names=model.class_names,
                        config=RANKING_PRESETS[preset])
    for s in picks:
        if s.index in annotated[s.case]:
            raise AssertionError(f"rank_slices re-picked annotated slice {s.index} of {s.case}")
    return [(s.case, s.index, s.score) for s in picks]


def _strategy_kwargs(strategy: str, pred, seed: int) -> dict:
    """Extra inputs a strategy needs (entropy: the probabilities; random: a seeded generator)."""
    if strategy == "entropy":
        return {"probabilities": pred.probabilities}
    if strategy == "random":
        return {"rng": np.random.default_rng(seed)}
    return {}
