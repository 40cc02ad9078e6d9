"""How large each class is on each slice, and how much larger a prediction may be (over-reach).

Why one module: two parts of the engine ask the same question of a label or class map. The
validator (:func:`barl_core.training.validator.overreach_fraction`) reports the share of a
prediction lying on axial slices where a class covers more than :data:`OVERREACH_MARGIN`
times its largest annotated cross-section; the active-learning ranking
(:mod:`barl_core.active`) scores and trims such slices by the same rule. ``active`` and
``training`` may not import each other (docs/architecture.md), both may import ``data``: the
per-slice areas (:func:`class_slice_areas`) and the margin live here, once.

Example
-------
>>> lab = np.zeros((3, 2, 2), np.uint8); lab[1, 0, :] = 1; lab[2] = 2
>>> class_slice_areas(lab, 2, axis=0).tolist()
[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["OVERREACH_MARGIN", "class_slice_areas"]

#: A class predicted on a slice on more than this many times its largest annotated
#: cross-section (in the volume, or over the cases of a ranking) cannot be right there: a
#: confident error no label points at. Why 2x: a structure's cross-section varies along the
#: slicing axis and the annotated slices need not hold its widest one, so a correct
#: prediction may be somewhat larger than anything annotated (the ranking tests keep 1.6x
#: inside); the failure it is meant to catch is far larger, a class painted over whole slices
#: beyond the structure's ends. At 2x the validator's over-reach separated the two broken
#: hippocampus round-0 models (0.854, 0.473) from the two that work (0.000); the margin itself
#: has not been swept (docs/method.md "Over-reach", docs/benchmarks.md 1f). Shared by the
#: validator's ``overreach`` and the ``focused2``/``focused3`` rankings.
OVERREACH_MARGIN = 2.0


def class_slice_areas(volume: np.ndarray, n_fg: int, axis: int) -> np.ndarray:
    """Return ``[Z, n_fg]`` float64: voxels of each foreground class ``1..n_fg`` on each slice along ``axis``.

    One pass over a label or class map gives its slices holding a class, its voxels, its
    largest cross-section and its area per slice. Values other than ``1..n_fg`` (background,
    the ignore value 255) are not counted.

    Parameters
    ----------
    volume : numpy.ndarray
        A 3D label or class map.
    n_fg : int
        Foreground classes (``num_classes - 1``).
    axis : int
        The slicing axis (0: axial).
    """
    vol = np.moveaxis(np.asarray(volume), axis, 0)
    if n_fg == 0:
        return np.zeros((vol.shape[0], 0), dtype=np.float64)
    return np.stack([(vol == k + 1).sum(axis=(1, 2)) for k in range(n_fg)], axis=1).astype(np.float64)
