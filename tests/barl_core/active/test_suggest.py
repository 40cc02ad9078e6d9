"""Slice and case suggestions: annotated slices skipped, diversity, ranking, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active.suggest import (
    annotated_slices,
    case_score,
    slice_scores,
    suggest_cases,
    suggest_slices,
)
from barl_core.errors import InvalidVolumeError


@pytest.fixture
def disagreement(rng):
    d = rng.uniform(0.0, 0.1, size=(30, 12, 12)).astype(np.float32)
    d[17, 3:6, 3:6] = 0.95  # a small, very confusing spot: the best slice
    d[16] += 0.45  # its neighbour is also high (diversity must skip it)
    d[5] += 0.35
    d[25] += 0.4
    return d


def _sparse(shape, annotated, value=1):
    lab = np.full(shape, 255, np.uint8)
    for z in annotated:
        lab[z] = 0
        lab[z, :2, :2] = value
    return lab


def test_highest_disagreement_slice_ranks_first(disagreement):
    picks = suggest_slices(disagreement, top_k=3, min_gap=2)
    assert picks[0].index == 17
    assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)
    assert picks[0].score == pytest.approx(slice_scores(disagreement)[17])


def test_top_reduce_beats_mean_for_small_spots(disagreement):
    top, mean = slice_scores(disagreement, reduce="top"), slice_scores(disagreement, reduce="mean")
    assert np.argmax(top) == 17  # the 9-voxel spot dominates its slice's top 10%
    assert np.argmax(mean) == 16  # but not its plain mean
    assert mean[17] < mean[5]
    assert mean[17] == pytest.approx(float(disagreement[17].mean()), rel=1e-6)


def test_never_suggests_annotated_slices(disagreement):
    labels = _sparse(disagreement.shape, [17, 5, 25])
    picks = suggest_slices(disagreement, labels, top_k=30, min_gap=0)
    got = {p.index for p in picks}
    assert got.isdisjoint({17, 5, 25})
    assert len(picks) == 27  # every other slice, once
    # an "all background" slice (painted with 0 only) is annotated too
    labels[9] = 0
    assert 9 not in {p.index for p in suggest_slices(disagreement, labels, top_k=30, min_gap=0)}
    assert annotated_slices(labels)[[5, 9, 17, 25]].all() and annotated_slices(labels).sum() == 4


@pytest.mark.parametrize("gap", [2, 3, 5])
def test_min_gap_respected(disagreement, gap):
    picks = suggest_slices(disagreement, top_k=6, min_gap=gap)
    idx = [p.index for p in picks]
    assert len(idx) >= 3
    assert all(abs(a - b) >= gap for i, a in enumerate(idx) for b in idx[i + 1 :])
    # without the rule, the confusing neighbour 16 comes right after 17
    assert [p.index for p in suggest_slices(disagreement, top_k=2, min_gap=0)] == [17, 16]


def test_other_axes(disagreement):
    d = np.transpose(disagreement, (1, 0, 2))  # the hot slice is now along axis 1
    assert suggest_slices(d, axis=1, top_k=1)[0].index == 17
    assert suggest_slices(d, axis=1, top_k=1)[0].axis == 1


def test_random_is_seeded_and_skips_annotated(disagreement):
    labels = _sparse(disagreement.shape, [0, 1, 2])
    a = suggest_slices(disagreement, labels, strategy="random", rng=7, top_k=5, min_gap=0)
    b = suggest_slices(disagreement, labels, strategy="random", rng=np.random.default_rng(7), top_k=5, min_gap=0)
    c = suggest_slices(disagreement, labels, strategy="random", rng=8, top_k=5, min_gap=0)
    assert [s.index for s in a] == [s.index for s in b]
    assert [s.index for s in a] != [s.index for s in c]
    assert not {s.index for s in a} & {0, 1, 2}
    # random does not follow the disagreement
    assert a[0].index != 17 or c[0].index != 17


def test_entropy_strategy_uses_probabilities():
    p = np.zeros((3, 10, 4, 4), np.float32)
    p[0] = 1.0  # certain everywhere ...
    p[:, 6] = 1.0 / 3.0  # ... except slice 6: uniform
    p[:, 2] = 0.0
    p[0, 2], p[1, 2] = 0.6, 0.4
    picks = suggest_slices(None, strategy="entropy", probabilities=p, top_k=2, min_gap=0)
    assert [s.index for s in picks] == [6, 2]
    assert picks[0].score == pytest.approx(1.0, abs=1e-5)


def test_cases_ranked_by_disagreement_and_annotation_effort():
    ranked = suggest_cases({"a": 0.1, "b": 0.5, "c": 0.3, "d": float("nan")}, top_k=3)
    assert [c.name for c in ranked] == ["b", "c", "a"]
    # equal disagreement: the case with fewer annotated slices comes first
    ranked = suggest_cases({"x": 0.4, "y": 0.4}, {"x": 8, "y": 0}, top_k=2)
    assert [c.name for c in ranked] == ["y", "x"]
    assert ranked[0].n_annotated == 0 and ranked[0].score > ranked[1].score
    assert len(suggest_cases({"a": 1.0, "b": 2.0}, top_k=1)) == 1


def test_case_score_ignores_annotated_slices(disagreement):
    free = case_score(disagreement)
    labels = _sparse(disagreement.shape, [16, 17, 5, 25])
    assert case_score(disagreement, labels) < free
    calm = np.full_like(disagreement, 0.01)
    assert case_score(calm) < free


def test_bad_arguments(disagreement):
    with pytest.raises(InvalidVolumeError, match="strategy"):
        suggest_slices(disagreement, strategy="magic")
    with pytest.raises(InvalidVolumeError, match="does not match"):
        suggest_slices(disagreement, np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(InvalidVolumeError):
        suggest_slices(disagreement[0])
