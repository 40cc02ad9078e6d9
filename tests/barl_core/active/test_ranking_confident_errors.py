"""The ``focused2`` preset's factors on synthetic cases whose right answer is known by construction.

What the hippocampus benchmark's picks showed (docs/benchmarks.md section 2): a round-0 model
trained on one slice through the middle of each structure paints a class over whole slices
beyond the structure's ends, with both branches agreeing. Disagreement cannot see that error;
the over-reach factor can. The same false positive makes the real structure look thin to an
area factor measured against the largest *predicted* cross-section, and a class annotated only
on its tips looks well covered when balance counts slices.
"""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.active.case_ranking import CaseSource, _context_for
from barl_core.active.context import (
    RankingContext,
    annotated_context,
    class_label_sizes,
    prepare_case,
)
from barl_core.active.ranking import RANKING_PRESETS, CaseInputs, RankingConfig, rank_slices
from barl_core.data.phantom import sparsify_labels
from barl_core.errors import InvalidVolumeError

SHAPE = (40, 24, 24)
NAMES = ["bg", "big", "small"]  # the classes of the `truth` fixture (conftest.py)


def _slab(truth: np.ndarray) -> np.ndarray:
    """The model's prediction: the truth, plus class 1 over whole slices 0-5 and 34-39,
    joined to the real structure (as the hippocampus round-0 model's anterior class)."""
    pred = truth.copy()
    pred[0:6] = 1
    pred[34:40] = 1
    pred[6:10, 4:10, 4:10] = 1  # the bridge to the real structure
    return pred


def test_a_confident_false_positive_over_whole_slices_is_asked_about(truth):
    pred = _slab(truth)
    dis = np.full(SHAPE, 0.01, np.float32)  # the branches agree on the slab
    dis[27, 4:10, 4:10] = 0.3  # an honest doubt on class 1's border near its end
    labels = sparsify_labels(truth, [20])
    case = CaseInputs("a", dis, pred, labels)
    pick = rank_slices([case], top_k=1, config=RANKING_PRESETS["focused2"], class_names=NAMES)[0]
    assert pick.index in range(0, 6) or pick.index in range(34, 40)
    assert pick.class_index == 1 and "likely a confident error" in pick.reason and "big predicted on 576" in pick.reason
    # the default ranking only sees the disagreement: it asks about the border slice
    assert rank_slices([case], top_k=1)[0].index == 27


def test_one_pick_per_slab_then_the_real_doubt(truth):
    """The coverage factors spread over-reach picks: not four neighbours of one slab."""
    pred = _slab(truth)
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[27, 4:10, 4:10] = 0.3
    picks = rank_slices([CaseInputs("a", dis, pred, sparsify_labels(truth, [20]))], top_k=3,
                        config=RANKING_PRESETS["focused2"])
    zs = sorted(p.index for p in picks)
    assert sum(z < 6 for z in zs) == 1 and sum(z >= 34 for z in zs) == 1 and 27 in zs


def test_no_over_reach_where_the_prediction_fits_the_annotated_size(truth):
    """A correct prediction (up to the margin) never scores by over-reach, nor a class nobody
    annotated (no reference size)."""
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[27, 4:10, 4:10] = 0.3
    pred = truth.copy()
    pred[12:28, 3:11, 3:10] = 1  # 56 voxels a slice: 1.6x the annotated 36, inside the margin of 2
    picks = rank_slices([CaseInputs("a", dis, pred, sparsify_labels(truth, [20]))], top_k=3,
                        config=RANKING_PRESETS["focused2"])
    assert all("confident error" not in p.reason for p in picks)
    # class 2's slab, but class 2 annotated nowhere: no reference, no over-reach pick
    slab2 = truth.copy()
    slab2[0:4] = 2
    only_class1 = sparsify_labels(np.where(truth == 2, 0, truth).astype(np.uint8), [20])
    picks = rank_slices([CaseInputs("a", dis, slab2, only_class1)], top_k=2, config=RANKING_PRESETS["focused2"])
    assert all("confident error" not in p.reason for p in picks)


def test_area_factor_against_the_annotated_size_keeps_the_real_structure_full(truth):
    """With the slab, class 1's real cross-section (36) is 1/16 of its largest predicted one
    (576): the default area factor floors it, and a less uncertain class-2 slice wins."""
    pred = _slab(truth)
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[16, 4:10, 4:10] = 0.5  # class 1, full cross-section
    dis[24, 14:18, 14:18] = 0.3  # class 2, full cross-section, less uncertain
    labels = sparsify_labels(truth, [20])
    case = CaseInputs("a", dis, pred, labels)
    flat = dict(balance_power=0.0, overreach_weight=0.0)
    assert rank_slices([case], top_k=1, config=RankingConfig(**flat))[0].index == 24
    assert rank_slices([case], top_k=1, config=RankingConfig(area_reference="annotated", **flat))[0].index == 16


def test_balance_by_voxels_weights_up_a_class_annotated_only_on_its_tips(truth):
    """Both classes are on 2 annotated slices elsewhere, but class 1 only by 1-voxel tips."""
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[20, 4:10, 4:10] = 0.40  # class 1's middle
    dis[19, 14:18, 14:18] = 0.45  # class 2's middle, a little more uncertain
    case = CaseInputs("a", dis, truth, None)
    ctx = RankingContext(None, np.array([2.0, 2.0]), np.array([2.0, 200.0]))
    by_slices = RankingConfig(area_floor=1.0)
    by_voxels = RankingConfig(area_floor=1.0, balance_by="voxels")
    assert rank_slices([case], top_k=1, config=by_slices, context=ctx)[0].index == 19
    pick = rank_slices([case], top_k=1, config=by_voxels, context=ctx, class_names=NAMES)[0]
    assert pick.index == 20 and "big is annotated on only 2 voxels" in pick.reason


def test_sizes_travel_in_the_context_and_across_feature_spaces(truth):
    labels = sparsify_labels(truth, [20, 24])
    voxels, areas = class_label_sizes(labels, 2, axis=0)
    assert voxels.tolist() == [72.0, 32.0] and areas.tolist() == [36.0, 16.0]
    ctx = annotated_context(labels, None, 3)
    assert ctx.class_voxels.tolist() == [72.0, 32.0] and ctx.class_areas.tolist() == [36.0, 16.0]
    both = RankingContext.combine([ctx, RankingContext(None, None, np.array([1.0, 1.0]), np.array([50.0, 2.0]))])
    assert both.class_voxels.tolist() == [73.0, 33.0] and both.class_areas.tolist() == [50.0, 16.0]
    # a case predicted by another model still lends its sizes (only its features are dropped)
    feats = np.zeros((SHAPE[0], 2))
    sources = [CaseSource("a", annotated_context(labels, feats, 3), space="m1"),
               CaseSource("b", annotated_context(labels, feats, 3), space="m2")]
    other = _context_for(sources[0], sources)
    assert other.features is None and other.class_areas.tolist() == [36.0, 16.0]
    # the reference size may come from another case only: the slab case has no label of class 1
    pred = _slab(truth)
    dis = np.full(SHAPE, 0.01, np.float32)
    unlabelled = CaseInputs("b", dis, pred, None)
    assert "confident error" not in rank_slices([unlabelled], top_k=1, config=RANKING_PRESETS["focused2"])[0].reason
    pick = rank_slices([unlabelled], top_k=1, config=RANKING_PRESETS["focused2"], context=ctx)[0]
    assert "confident error" in pick.reason


def test_prepared_case_ranks_like_the_inputs_under_focused2(truth):
    pred = _slab(truth)
    rng = np.random.default_rng(0)
    dis = rng.uniform(0, 0.3, SHAPE).astype(np.float32)
    case = CaseInputs("a", dis, pred, sparsify_labels(truth, [20]))
    cfg = RANKING_PRESETS["focused2"]
    prepared = prepare_case(case, num_classes=3, focus=cfg.focus, area_floor=cfg.area_floor)
    a = rank_slices([case], top_k=5, config=cfg, num_classes=3)
    b = rank_slices([prepared], top_k=5, config=cfg, num_classes=3)
    assert [(p.index, p.reason) for p in a] == [(p.index, p.reason) for p in b]


def test_bad_settings_are_refused():
    with pytest.raises(InvalidVolumeError):
        RankingConfig(balance_by="cases")
    with pytest.raises(InvalidVolumeError):
        RankingConfig(area_reference="median")
