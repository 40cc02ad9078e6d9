"""The fixed protocol: which cases are test, pool and labelled, and which slices are annotated.

Every benchmark must use the *same* split and the same way of hiding labels, otherwise the
numbers of two scripts are not comparable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from barl_core.data.labels import IGNORE_INDEX

#: The constant that fixes every split: change it and the numbers are no longer comparable.
SPLIT_SEED = 20250504


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
