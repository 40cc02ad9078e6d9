"""The ``focused`` ranking on synthetic cases whose right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active.context import annotated_context
from barl_core.active.focus import (
    FocusConfig,
    class_regions,
    class_slice_uncertainty,
    focus_profile,
)
from barl_core.active.ranking import CaseInputs, RankingConfig, rank_cases, rank_slices
from barl_core.active.suggest import suggest_slices
from barl_core.errors import InvalidVolumeError

SHAPE = (40, 24, 24)


def _sparse(truth: np.ndarray, slices) -> np.ndarray:
    lab = np.full(truth.shape, 255, np.uint8)
    for z in slices:
        lab[z] = truth[z]
    return lab


@pytest.fixture
def two_classes():
    """A large class 1 (z 8-31) and a small class 2 (z 12-27, 3x3 voxels) beside it."""
    truth = np.zeros(SHAPE, np.uint8)
    truth[8:32, 4:16, 4:14] = 1
    truth[12:28, 18:21, 18:21] = 2
    return truth


def test_uncertain_small_class_border_beats_confident_empty_slice(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[2] = 0.9  # an empty end where the branches argue about nothing that is there
    dis[26, 17:22, 17:22] = 0.4  # the small class's border near its end: a real decision
    labels = _sparse(two_classes, [20])
    picks = rank_slices([CaseInputs("a", dis, two_classes, labels)], top_k=1, class_names=["bg", "big", "small"])
    assert picks[0].index == 26 and picks[0].class_index == 2
    assert "small" in picks[0].reason
    # the plain disagreement ranking asks for the empty slice: the case tells the two apart
    assert suggest_slices(dis, labels, strategy="disagreement", top_k=1)[0].index == 2


def test_scattered_false_positive_far_from_the_labels_is_not_asked_about(two_classes):
    pred = two_classes.copy()
    pred[0:2, 2:8, 2:8] = 1  # a false-positive blob at the volume's end, not touching class 1
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[0:2, 2:8, 2:8] = 0.9
    dis[10, 4:16, 4] = 0.3
    labels = _sparse(two_classes, [20])
    profile = focus_profile(dis, pred, labels, num_classes=3)
    assert profile[0] == profile[1] == 0.0 and profile[10] > 0
    assert rank_slices([CaseInputs("a", dis, pred, labels)], top_k=1)[0].index == 10


def test_far_slice_beats_one_next_to_an_annotated_slice(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[21, 4:16, 4] = 0.5  # next to annotated slice 20
    dis[29, 4:16, 4] = 0.5  # 9 slices away, same uncertainty
    labels = _sparse(two_classes, [20])
    case = CaseInputs("a", dis, two_classes, labels)
    assert rank_slices([case], top_k=1)[0].index == 29
    # even when the neighbour is more uncertain, the no-pick gap keeps it out...
    dis[21, 4:16, 4] = 0.9
    assert rank_slices([case], top_k=1)[0].index != 21
    # ...and without the gap and the coverage factor it would win: the rule is what decides
    flat = RankingConfig(min_gap=0, spread=1e-9)
    assert rank_slices([case], top_k=1, config=flat)[0].index == 21


def test_rare_class_is_asked_about_before_a_common_one(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[14, 4:16, 4:7] = 0.55  # class 1's border on slice 14 (fills its band's top 10%)
    dis[26, 18:21, 18:20] = 0.5  # class 2's border on slice 26, a little less uncertain
    # four annotated slices, all outside class 2's extent: class 1 seen 4 times, class 2 never
    labels = _sparse(two_classes, [9, 10, 30, 31])
    cfg = RankingConfig(focus=FocusConfig(margin_z=0))
    case = CaseInputs("a", dis, two_classes, labels)
    pick = rank_slices([case], top_k=1, config=cfg, class_names=["bg", "big", "small"])[0]
    assert pick.index == 26 and pick.class_index == 2 and "small is annotated on only 0 slices" in pick.reason
    # without the class-balance weight the (slightly) more uncertain common class wins
    unbalanced = RankingConfig(focus=FocusConfig(margin_z=0), balance_power=0.0)
    assert rank_slices([case], top_k=1, config=unbalanced)[0].index == 14
    # class 2 annotated on 8 slices of another case (the context): now class 1 is the rarer
    other = _sparse(np.where(two_classes == 1, 0, two_classes).astype(np.uint8), range(12, 28, 2))
    ctx = annotated_context(other, None, 3)
    assert list(ctx.class_counts) == [0, 8] and ctx.features is None
    assert rank_slices([case], top_k=1, config=cfg, context=ctx)[0].index == 14


def test_picks_spread_across_cases_and_never_repeat(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[8:32, 4:16, 4] = 0.4
    cases = [CaseInputs(n, dis, two_classes, _sparse(two_classes, [20])) for n in ("a", "b")]
    picks = rank_slices(cases, top_k=4)
    assert {p.case for p in picks[:2]} == {"a", "b"}
    keys = [(p.case, p.index) for p in picks]
    assert len(set(keys)) == 4 and all(i != 20 for _, i in keys)
    for p in picks:  # no two picks of one case within the gap
        others = [q.index for q in picks if q.case == p.case and q is not p] + [20]
        assert min(abs(p.index - o) for o in others) >= RankingConfig().min_gap


def test_uncertainty_is_the_shared_profile_and_the_reason_gives_the_distance(two_classes):
    rng = np.random.default_rng(3)
    dis = rng.uniform(0, 0.5, SHAPE).astype(np.float32)
    labels = _sparse(two_classes, [20])
    profile = focus_profile(dis, two_classes, labels, num_classes=3)
    per_class = class_slice_uncertainty(dis, two_classes, labels, num_classes=3)
    assert np.allclose(profile, per_class.max(axis=1))
    picks = rank_slices([CaseInputs("a", dis, two_classes, labels)], top_k=3)
    assert len(picks) == 3
    for p in picks:
        assert p.uncertainty == pytest.approx(profile[p.index])
        assert p.distance == abs(p.index - 20)  # to the annotated slice, not to earlier picks
        assert f"nothing annotated within {p.distance - 1} slices" in p.reason


def test_feature_space_coverage_prefers_a_slice_unlike_the_annotated_ones(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[10, 4:16, 4] = 0.5
    dis[30, 4:16, 4] = 0.5  # equally uncertain and equally far (10 slices) from slice 20
    feats = np.zeros((SHAPE[0], 4))
    feats[30] = [5.0, 0, 0, 0]  # slice 30 looks unlike the annotated slice 20; slice 10 like it
    labels = _sparse(two_classes, [20])
    pick = rank_slices([CaseInputs("a", dis, two_classes, labels, features=feats)], top_k=1)[0]
    assert pick.index == 30
    feats[[10, 30]] = feats[[30, 10]]
    pick = rank_slices([CaseInputs("a", dis, two_classes, labels, features=feats)], top_k=1)[0]
    assert pick.index == 10


def test_a_slice_identical_in_feature_space_to_an_annotated_one_in_another_case_ranks_below_a_novel_one(two_classes):
    """Feature-space coverage spans cases: case b's slice 10 looks exactly like case a's
    annotated slice 20 (same embedding), its slice 29 like nothing annotated; both are equally
    uncertain and equally far from b's own annotated slice, so the novel one must win."""
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[10, 4:16, 4] = 0.5
    dis[30, 4:16, 4] = 0.5
    rng = np.random.default_rng(0)
    feats_a, feats_b = rng.normal(size=(SHAPE[0], 6)), rng.normal(size=(SHAPE[0], 6))
    feats_b[10] = feats_a[20]  # identical to a's annotated slice
    a = CaseInputs("a", np.full(SHAPE, 0.01, np.float32), two_classes, _sparse(two_classes, [20]), features=feats_a)
    b = CaseInputs("b", dis, two_classes, _sparse(two_classes, [20]), features=feats_b)
    assert rank_slices([a, b], top_k=1)[0].index == 30
    feats_b[[10, 30]] = feats_b[[30, 10]]  # now slice 30 is the copy: the pick follows the features
    assert rank_slices([a, b], top_k=1)[0].index == 10
    # without features the two tie on every other factor: the features are what decides
    plain = [CaseInputs(c.name, c.disagreement, c.predicted, c.labels) for c in (a, b)]
    top = rank_slices(plain, top_k=2)
    assert {p.index for p in top} == {10, 30}
    assert top[1].score == pytest.approx(top[0].score * RankingConfig().case_decay)  # a tie but for the 2nd pick's decay


def test_case_ranking_prefers_the_case_with_more_to_learn(two_classes):
    calm = np.full(SHAPE, 0.01, np.float32)
    busy = calm.copy()
    busy[8:32, 4:16, 4] = 0.6
    ranked = rank_cases([CaseInputs("calm", calm, two_classes, _sparse(two_classes, [20])),
                         CaseInputs("busy", busy, two_classes, _sparse(two_classes, [20]))])
    assert [r.name for r in ranked] == ["busy", "calm"] and ranked[0].score > ranked[1].score
    assert ranked[0].best_slice is not None and ranked[0].reason


def test_focused_through_suggest_slices_and_its_errors(two_classes):
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[26, 17:22, 17:22] = 0.4
    picks = suggest_slices(dis, _sparse(two_classes, [20]), strategy="focused", predicted=two_classes, top_k=2)
    assert picks[0].index == 26 and picks[0].reason and picks[0].uncertainty > 0
    with pytest.raises(InvalidVolumeError, match="predicted class map"):
        suggest_slices(dis, strategy="focused")
    with pytest.raises(InvalidVolumeError, match="do not match"):
        rank_slices([CaseInputs("a", dis, two_classes[:-1])])


def test_a_full_cross_section_beats_the_structure_tip_at_equal_doubt_and_distance():
    truth = np.zeros(SHAPE, np.uint8)
    truth[10:31, 4:16, 4:16] = 1
    truth[30, 4:16, 4:16] = 0
    truth[30, 9:11, 9:11] = 1  # slice 30: the thin tip (4 voxels); slice 10: a full section
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[10, 4:16, 4:6] = 0.6  # fills the top 10% of slice 10's 144 voxels
    dis[30, 9:11, 9:11] = 0.6  # same doubt, both 10 slices from the annotated slice 20
    case = CaseInputs("a", dis, truth, _sparse(truth, [20]))
    cfg = RankingConfig(focus=FocusConfig(margin_xy=0, margin_z=0))
    assert rank_slices([case], top_k=1, config=cfg)[0].index == 10
    # the area factor is what decides: make the tip a little more uncertain, it still loses...
    dis[30, 9:11, 9:11] = 0.7
    assert rank_slices([case], top_k=1, config=cfg)[0].index == 10
    # ...and wins once the area factor is off
    no_area = RankingConfig(focus=FocusConfig(margin_xy=0, margin_z=0), area_floor=1.0)
    assert rank_slices([case], top_k=1, config=no_area)[0].index == 30


def test_a_class_not_annotated_yet_is_anchored_next_to_the_annotated_structure(two_classes):
    pred = two_classes.copy()
    pred[12:28, 18:21, 18:21] = 0
    pred[12:28, 16:19, 4:14] = 2  # class 2 predicted right beside class 1 (touching it)...
    pred[30:38, 2:20, 16:23] = 2  # ...and a larger class-2 blob far away
    labels = _sparse(np.where(pred == 2, 0, pred).astype(np.uint8), [20])  # slice 20: class 1 only
    bands = class_regions(pred, labels, num_classes=3)
    assert bands[1][20, 17, 8] and not bands[1][34, 10, 20]
