"""How an image is extended past its border: one rule for training patches and prediction.

Why one module: the network (instance normalisation) sees the padded voxels as part of
every patch that reaches past a volume, so training and prediction must pad alike. Before
issue 11's fix the patch sampler padded with the normalised volume's minimum and the sliding
window replicated the edge, so a patch larger than the volume (the planner's first
whole-volume 40x56x40 hippocampus patch: ~30% of each patch) trained on a constant border
that prediction never showed it. Both paths now call :func:`pad_image`, which reads
:data:`IMAGE_PAD_MODE`, so they cannot drift apart.

Edge replication commutes with any voxel-wise normalisation (``normalize`` is one), so it
does not matter whether a path pads before normalising (the sliding window with ``norm``)
or after (the sampler, on normalised volumes): the network gets the same numbers. Labels
are not padded here: padded voxels are not annotated, so the sampler gives them the ignore
value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from barl_core.errors import InvalidVolumeError

__all__ = ["IMAGE_PAD_MODE", "pad_image"]

#: ``numpy.pad`` mode for image voxels outside the volume, in training and in prediction.
#: ``"edge"``: replicate the border voxel (what the sliding window always did; no constant
#: block that shifts instance-norm statistics, and no value the scan does not contain).
IMAGE_PAD_MODE = "edge"


def pad_image(array: np.ndarray, widths: Sequence[tuple[int, int]]) -> np.ndarray:
    """Pad ``array`` by ``widths`` (``(before, after)`` per axis) with :data:`IMAGE_PAD_MODE`.

    Returns ``array`` itself when no axis is padded (no copy).

    Raises
    ------
    InvalidVolumeError
        ``array`` is empty (there is no edge to replicate) or a width is negative.
    """
    pads = [(int(a), int(b)) for a, b in widths]
    if any(a < 0 or b < 0 for a, b in pads):
        raise InvalidVolumeError(f"padding widths must be >= 0, got {pads}")
    if not any(a or b for a, b in pads):
        return array
    if np.asarray(array).size == 0:
        raise InvalidVolumeError("cannot pad an empty array")
    return np.pad(array, pads, mode=IMAGE_PAD_MODE)
