"""An agreement threshold fitted to the model's calibration on the frozen validation slices.

Why: a fixed threshold (0.90) proposes almost nothing after a first short training round,
although the branches may already be right wherever they agree at 0.7. The human labels of
the validation slices (never trained on, :mod:`barl_core.workspace.validation`) tell how
often an agreed voxel is right at each threshold; the lowest threshold at which every class
is right often enough (``target_precision``) is the one to propose at, and the numbers that
support it are said to the user.

Example
-------
>>> rng = np.random.default_rng(0)
>>> lab = rng.integers(0, 2, (64, 64)).astype(np.uint8)
>>> conf = rng.random((64, 64)).astype(np.float16)
>>> pred = np.where(conf > 0.6, lab, 1 - lab).astype(np.uint8)   # right only above 0.6
>>> cal = calibrate_threshold([(pred, conf, lab)], target_precision=0.99)
>>> 0.6 <= cal.threshold <= 0.62, cal.precision >= 0.99
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from barl_core.data.labels import IGNORE_INDEX

__all__ = ["Calibration", "calibrate_threshold", "CANDIDATES"]

#: Thresholds tried, coarse to fine enough for a spin box with two decimals.
CANDIDATES = tuple(round(float(t), 2) for t in np.arange(0.50, 1.0, 0.01))


@dataclass(frozen=True)
class Calibration:
    """The fitted threshold and the evidence for it."""

    threshold: float
    precision: float  # worst class: share of its proposed voxels the human agrees with
    coverage: float  # share of the validation voxels proposed at this threshold
    n_voxels: int
    n_slices: int


def calibrate_threshold(
    slices: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    target_precision: float = 0.95,
    min_class_voxels: int = 20,
    candidates: Iterable[float] = CANDIDATES,
) -> Calibration | None:
    """Find the lowest agreement threshold whose proposals are right often enough, per class.

    Parameters
    ----------
    slices : iterable of (prediction, confidence, labels)
        2D slices with human labels (``255`` = not annotated, left out).
    target_precision : float
        For every predicted class with at least ``min_class_voxels`` proposed voxels, the
        share of them the human labelled the same must reach this.
    candidates : iterable of float
        Thresholds tried, lowest first wins.

    Returns
    -------
    Calibration or None
        None without labelled voxels, or when no candidate reaches the target.
    """
    preds, confs, labs, n_slices = [], [], [], 0
    for pred, conf, lab in slices:
        keep = np.asarray(lab) != IGNORE_INDEX
        if keep.any():
            preds.append(np.asarray(pred)[keep])
            confs.append(np.asarray(conf, np.float32)[keep])
            labs.append(np.asarray(lab)[keep])
            n_slices += 1
    if not preds:
        return None
    p, c, t = np.concatenate(preds), np.concatenate(confs), np.concatenate(labs)
    for thr in sorted(float(x) for x in candidates):
        proposed = c >= np.float32(np.float16(thr))  # as the proposals gate float16 maps
        if not proposed.any():
            continue
        worst, judged = 1.0, 0
        for k in np.unique(p[proposed]):
            mine = proposed & (p == k)
            if mine.sum() >= min_class_voxels:  # too few voxels say nothing either way
                worst = min(worst, float(np.mean(t[mine] == k)))
                judged += 1
        if judged and worst >= target_precision:
            return Calibration(thr, worst, float(proposed.mean()), int(t.size), n_slices)
    return None
