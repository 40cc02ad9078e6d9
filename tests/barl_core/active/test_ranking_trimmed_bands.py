"""The ``focused3`` preset: bands built without slices a class cannot fill (known answers).

The demo's diagnosis (docs/benchmarks.md section 2): a round-0 model painted bone over whole
end slices, joined to the real bone, and in a case nobody annotated its largest tooth
component was a false blob at the volume's end. The band followed both, so the ranking asked
about empty end slices. Trimming the slices where a class is predicted on more than 2x its
largest annotated cross-section keeps the band on the real structure.
"""

from __future__ import annotations

import numpy as np

from barl_core.active.context import annotated_context, prepare_case
from barl_core.active.focus import FocusConfig, class_regions
from barl_core.active.ranking import RANKING_PRESETS, CaseInputs, rank_slices
from barl_core.data.phantom import sparsify_labels

SHAPE = (40, 24, 24)
NAMES = ["bg", "big", "small"]  # the classes of the `truth` fixture (conftest.py)


def _slab_case(truth: np.ndarray) -> np.ndarray:
    """Class 1 also over whole slices 0-5, joined to the real structure by a bridge (z 6-9)."""
    pred = truth.copy()
    pred[0:6] = 1
    pred[6:10, 4:10, 4:10] = 1
    return pred


def test_trimmed_band_leaves_out_the_slab_and_keeps_the_structure(truth):
    pred = _slab_case(truth)
    labels = sparsify_labels(truth, [20])
    refs = np.array([36.0, 16.0])
    plain = class_regions(pred, labels, num_classes=3, config=FocusConfig(margin_z=1))[0]
    trimmed = class_regions(pred, labels, num_classes=3, config=FocusConfig(margin_z=1, trim_overreach=2.0),
                            reference_areas=refs)[0]
    on = lambda band: np.flatnonzero(band.any(axis=(1, 2))).tolist()  # noqa: E731
    assert on(plain) == list(range(0, 31))  # the slab belongs to the structure it touches
    assert on(trimmed) == list(range(5, 31))  # slabs gone; the bridge and one slice of margin stay
    # no reference size (class never annotated anywhere): nothing is trimmed
    untrimmed = class_regions(pred, labels, num_classes=3, config=FocusConfig(margin_z=1, trim_overreach=2.0),
                              reference_areas=np.zeros(2))[0]
    assert on(untrimmed) == on(plain)


def test_unannotated_case_is_asked_about_its_structure_not_its_false_blob(truth):
    """Case b (nobody annotated it) holds a slab at its end, larger than its real class 1."""
    annotated = CaseInputs("a", np.full(SHAPE, 0.01, np.float32), truth.copy(), sparsify_labels(truth, [12, 20, 27]))
    pred = truth.copy()
    pred[35:40] = 1  # a confident false slab, not touching the structure: its largest class-1 component
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[35:40] = 0.05  # the branches barely argue about it
    dis[28, 4:10, 4:10] = 0.3  # the real decision: class 1's border near its end
    b = CaseInputs("b", dis, pred, None)
    ranked = rank_slices([annotated, b], top_k=1, config=RANKING_PRESETS["focused3"], class_names=NAMES)
    assert (ranked[0].case, ranked[0].index) == ("b", 28) and ranked[0].class_index == 1
    # the untrimmed ranking takes the slab for class 1's structure in case b and asks about it
    ranked = rank_slices([annotated, b], top_k=1, config=RANKING_PRESETS["focused"], class_names=NAMES)
    assert (ranked[0].case, ranked[0].index in range(33, 40)) == ("b", True)


def test_reference_sizes_come_from_the_context_for_a_prepared_case(truth):
    pred = _slab_case(truth)
    dis = np.random.default_rng(0).uniform(0, 0.3, SHAPE).astype(np.float32)
    ctx = annotated_context(sparsify_labels(truth, [20]), None, 3)
    cfg = RANKING_PRESETS["focused3"]
    case = CaseInputs("b", dis, pred, None)
    prepared = prepare_case(case, num_classes=3, focus=cfg.focus, area_floor=cfg.area_floor,
                            reference_areas=ctx.class_areas)
    a = rank_slices([case], top_k=4, config=cfg, num_classes=3, context=ctx)
    b = rank_slices([prepared], top_k=4, config=cfg, num_classes=3, context=ctx)
    assert [(p.index, p.reason) for p in a] == [(p.index, p.reason) for p in b]
    assert all(p.index >= 5 for p in a)  # never on the slab (z 0-4 trimmed; z 5 is the margin)
