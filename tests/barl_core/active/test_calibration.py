"""The agreement threshold fitted on validation slices."""

from __future__ import annotations

import numpy as np

from barl_core.active.calibration import calibrate_threshold


def _slices(right_above, n=3, shape=(48, 48), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = rng.integers(0, 3, shape).astype(np.uint8)
        conf = rng.random(shape).astype(np.float16)
        pred = np.where(conf >= right_above, lab, (lab + 1) % 3).astype(np.uint8)
        out.append((pred, conf, lab))
    return out


def test_finds_the_lowest_threshold_that_is_right():
    for edge in (0.62, 0.8):
        cal = calibrate_threshold(_slices(edge), target_precision=0.99)
        assert cal is not None and edge <= cal.threshold <= edge + 0.02
        assert cal.precision >= 0.99 and cal.n_slices == 3
        # the share proposed is the share of voxels at or above the threshold
        conf = np.concatenate([c.ravel() for _, c, _ in _slices(edge)]).astype(np.float32)
        assert cal.coverage == np.mean(conf >= np.float16(cal.threshold))


def test_one_bad_class_holds_the_threshold_up_and_unlabelled_voxels_do_not_count():
    slices = _slices(0.6)
    pred, conf, lab = slices[0]
    bad = (lab == 2) & (conf < 0.9)
    pred[bad] = 2
    lab[bad] = 1  # class 2 is wrong below 0.9 on this slice
    cal = calibrate_threshold(slices, target_precision=0.99)
    assert cal is not None and cal.threshold >= 0.9
    lab[bad] = 255  # not annotated: no evidence either way
    assert calibrate_threshold(slices, target_precision=0.99).threshold < 0.9


def test_none_without_evidence_or_when_never_right_enough():
    assert calibrate_threshold([]) is None
    pred, conf, lab = _slices(0.6)[0]
    assert calibrate_threshold([(pred, conf, np.full_like(lab, 255))]) is None
    assert calibrate_threshold([((lab + 1) % 3, conf, lab)]) is None
