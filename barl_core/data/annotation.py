"""What part of a sparse label map is annotated: labelled, partial (which slices) or unlabelled.

Why a status and not just "has labels": a few painted slices, a full label map and
scribbles train differently and must be reported differently (``barl info``), and the
annotated slices must be found along whichever axis they were drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InvalidVolumeError

__all__ = ["AnnotationStatus", "annotation_status", "format_ranges"]


@dataclass
class AnnotationStatus:
    """What part of a label map is annotated.

    Attributes
    ----------
    kind : str
        ``"labelled"`` (no ignore voxel), ``"partial"`` or ``"unlabelled"`` (no label
        map, or only ignore voxels).
    axis : int or None
        For ``partial``: the axis along which the annotated voxels form whole slices
        (0 preferred). If they form no whole slices (scribbles), the axis along which
        they touch the fewest slices, and ``whole_slices`` is False.
    slices : list of int
        For ``partial``: the slices (along ``axis``) holding annotated voxels.
    annotated_fraction : float
        Annotated voxels / all voxels.
    whole_slices : bool
        True when every listed slice is annotated on all of its voxels.
    """

    kind: str
    axis: int | None
    slices: list[int]
    annotated_fraction: float
    whole_slices: bool = True

    def describe(self) -> str:
        """One line for ``barl info``: the kind, and for partial maps the slices."""
        if self.kind != "partial":
            return self.kind
        what = "slices" if self.whole_slices else "slices (partly)"
        return f"partial: {len(self.slices)} {what} on axis {self.axis}: {format_ranges(self.slices)}"


def format_ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (short for long slice lists)."""
    out: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def annotation_status(
    labels: np.ndarray | None, ignore_index: int = IGNORE_INDEX
) -> AnnotationStatus:
    """Classify a (sparse) label map as labelled, partial or unlabelled.

    Examples
    --------
    >>> lab = np.full((4, 5, 5), 255, np.uint8); lab[2] = 0
    >>> annotation_status(lab).slices
    [2]
    """
    if labels is None:
        return AnnotationStatus("unlabelled", None, [], 0.0)
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InvalidVolumeError(f"expected a 3D label map, got {labels.ndim}D")
    annotated = labels != ignore_index
    n = int(annotated.sum())
    if n == 0:
        return AnnotationStatus("unlabelled", None, [], 0.0)
    fraction = n / labels.size
    if n == labels.size:
        return AnnotationStatus("labelled", None, [], 1.0)
    per_axis = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = annotated.sum(axis=other)
        touched = np.flatnonzero(counts)
        slice_size = labels.size // labels.shape[axis]
        whole = bool((counts[touched] == slice_size).all())
        if whole:
            return AnnotationStatus("partial", axis, [int(i) for i in touched], fraction, True)
        per_axis.append(touched)
    axis = int(np.argmin([len(t) for t in per_axis]))
    return AnnotationStatus("partial", axis, [int(i) for i in per_axis[axis]], fraction, False)
