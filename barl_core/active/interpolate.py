"""Fill between slices: shape-based interpolation of labels between two annotated slices.

Why: a radiologist who outlined a structure on slices 10 and 20 should not have to draw the
nine between them from scratch. As in 3D Slicer's "Fill between slices" and ITK-SNAP's
interpolation, each class is turned into a signed distance map on both annotated slices
(negative inside, in mm, so anisotropic pixels do not skew the shape), the maps are blended
linearly along z, and a voxel takes the class whose blended distance is most negative;
where no class is inside, it is background. Like every shape-based method it follows a
structure that moves or changes size between the two slices as long as its cross-sections
overlap; two cross-sections that do not overlap at all fade out rather than slide. The result is offered as *proposals* the user
accepts or corrects, never written as labels on its own.

Example
-------
>>> lab = np.full((5, 16, 16), 255, np.uint8)
>>> lab[0] = 0; lab[0, 2:10, 2:10] = 1             # a square...
>>> lab[4] = 0; lab[4, 6:14, 6:14] = 1             # ...that moved by 4 voxels
>>> fill = interpolate_between(lab, 0, 4)
>>> sorted(fill), np.argwhere(fill[2]).min(0).tolist(), np.argwhere(fill[2]).max(0).tolist()
([1, 2, 3], [4, 4], [11, 11])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError

__all__ = ["signed_distance", "interpolate_between", "bracketing_slices"]



def signed_distance(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """Signed Euclidean distance to the edge of a 2D ``mask`` (negative inside), in mm.

    An empty mask is "far outside" everywhere (the slice's diagonal), so that a structure
    present on one end only shrinks away towards the other.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, float(np.hypot(*np.multiply(mask.shape, spacing))), np.float32)
    if mask.all():
        return np.full(mask.shape, -float(np.hypot(*np.multiply(mask.shape, spacing))), np.float32)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return (outside - inside).astype(np.float32)


def interpolate_between(
    labels: np.ndarray,
    z0: int,
    z1: int,
    *,
    spacing_yx: Sequence[float] = (1.0, 1.0),
    ignore_index: int = IGNORE_INDEX,
) -> dict[int, np.ndarray]:
    """Interpolated label slices strictly between annotated slices ``z0`` and ``z1`` (axis 0).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Z, Y, X)`` sparse labels; slices ``z0`` and ``z1`` must be fully annotated (no
        ``ignore_index`` voxel), since a scribbled slice does not say where a shape ends.
    z0, z1 : int
        The two annotated slices, in either order.
    spacing_yx : sequence of float
        In-plane voxel size (mm), so that distances are physical.

    Returns
    -------
    dict of int to numpy.ndarray
        ``{z: uint8 class map}`` for every ``z`` between the two.

    Raises
    ------
    InputFileError
        When a bracketing slice is not fully annotated or the slices are adjacent.
    """
    labels = np.asarray(labels)
    z0, z1 = sorted((int(z0), int(z1)))
    if not (0 <= z0 and z1 < labels.shape[0]):
        raise InputFileError(
            f"slices {z0} and {z1} are outside the volume (0..{labels.shape[0] - 1})"
        )
    if z1 - z0 < 2:
        raise InputFileError(f"slices {z0} and {z1} have nothing between them to fill")
    a, b = labels[z0], labels[z1]
    for z, sl in ((z0, a), (z1, b)):
        if (sl == ignore_index).any():
            raise InputFileError(
                f"slice {z} is not fully annotated (scribbled or empty): fill between two "
                "slices painted in full-slice mode"
            )
    classes = sorted((set(np.unique(a).tolist()) | set(np.unique(b).tolist())) - {0})
    out: dict[int, np.ndarray] = {}
    if not classes:
        return {z: np.zeros(a.shape, np.uint8) for z in range(z0 + 1, z1)}
    d0 = np.stack([signed_distance(a == c, spacing_yx) for c in classes])
    d1 = np.stack([signed_distance(b == c, spacing_yx) for c in classes])
    ids = np.asarray(classes, np.uint8)
    for z in range(z0 + 1, z1):
        t = (z - z0) / (z1 - z0)
        d = (1.0 - t) * d0 + t * d1
        best = np.argmin(d, axis=0)
        inside = np.take_along_axis(d, best[None], axis=0)[0] < 0
        out[z] = np.where(inside, ids[best], 0).astype(np.uint8)
    return out


def bracketing_slices(
    labels: np.ndarray, z: int, *, ignore_index: int = IGNORE_INDEX
) -> tuple[int, int] | None:
    """Find the nearest fully annotated slices below and above slice ``z`` (None if one is missing)."""
    flat = np.asarray(labels).reshape(labels.shape[0], -1)
    full = [int(s) for s in np.flatnonzero((flat != ignore_index).all(axis=1))]
    below = [s for s in full if s < int(z)]
    above = [s for s in full if s > int(z)]
    if not below or not above:
        return None
    return below[-1], above[0]
