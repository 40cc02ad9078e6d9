"""Sparse label maps: the ignore value and which slices are annotated.

Why one module: a label map with a few painted slices is the currency of the whole
package (the dataset loader, the losses, the metrics, the workspace, the suggestions,
the audit). They must agree on the value that means "nobody annotated this voxel" and
on what makes a slice "annotated"; both are defined here, once.

A slice is *annotated* when it holds at least one voxel other than :data:`IGNORE_INDEX`
(a slice marked "all background" holds zeros, so it counts).
"""

from __future__ import annotations

import numpy as np

from barl_core.errors import InvalidVolumeError

__all__ = ["IGNORE_INDEX", "annotated_mask", "annotated_slices"]

#: Label value of voxels nobody annotated (uint8 maps; classes are ``0..K-1``, K <= 255).
IGNORE_INDEX = 255


def annotated_mask(
    labels: np.ndarray | None, axis: int = 0, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Boolean per slice along ``axis``: True where the slice holds a non-ignore voxel.

    Parameters
    ----------
    labels : ndarray or None
        A 3D label map; None (no label map) gives an empty mask.
    axis : int
        The slicing axis (0 = axial for ``(z, y, x)`` arrays).
    ignore_index : int
        The "not annotated" value.

    Raises
    ------
    InvalidVolumeError
        ``labels`` is not 3D, or ``axis`` is not one of its axes.
    """
    if labels is None:
        return np.zeros(0, dtype=bool)
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise InvalidVolumeError(f"expected a 3D label map, got {lab.ndim}D")
    if not -3 <= int(axis) < 3:
        raise InvalidVolumeError(f"axis {axis} is not an axis of a 3D label map")
    ax = int(axis) % 3
    other = tuple(a for a in range(3) if a != ax)
    return (lab != ignore_index).any(axis=other)


def annotated_slices(
    labels: np.ndarray | None, axis: int = 0, ignore_index: int = IGNORE_INDEX
) -> list[int]:
    """Return indices of the annotated slices along ``axis``, sorted (see :func:`annotated_mask`)."""
    return [int(z) for z in np.flatnonzero(annotated_mask(labels, axis, ignore_index))]
