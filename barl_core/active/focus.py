"""Where the decision is: branch disagreement on and near each predicted structure, per slice.

A slice-selection score computed over the whole slice rewards the wrong slices: on a weak
model the two branches argue most about scattered false positives at the volume's empty ends,
and a human label there teaches "background at the edges" rather than the shape (in the
hippocampus benchmark, 9 of 20 disagreement picks lay outside the structure's z-extent). This
module restricts the disagreement to a *band* around each foreground class:

- the class's predicted voxels, keeping the connected components that touch a voxel the
  annotator labelled as that class (the real structure; for a class not annotated yet, the
  surroundings of any annotated foreground) or, when none does, the largest one;
  plus the annotated voxels of the class, so a class the model misses still has a band;
- with ``trim_overreach`` > 0, the slices where the class is predicted on more than that many
  times its largest annotated cross-section (``reference_areas``) are cut out first: a
  confident false positive over whole slices must not become "the structure" (on the demo
  phantom a round-0 model painted bone over ~4,000 of 4,096 voxels of every end slice, and the
  largest tooth blob of an unannotated case was such a slab: the ranking then asked about them);
- dilated by ``margin_xy`` voxels in-plane and ``margin_z`` slices along the slicing axis, so
  an under-segmented border and the first slice beyond the predicted end are still asked about.

:func:`class_slice_uncertainty` gives one value per (slice, class): the mean of the top
``top_fraction`` disagreement values inside the class's band on that slice, so a small class
is not averaged away by its larger neighbour. :func:`focus_profile` is its maximum over
classes: **the per-slice quantity the minimap, the heat-map legend and the ranking share**.

Example
-------
>>> dis = np.zeros((8, 6, 6), np.float32); pred = np.zeros((8, 6, 6), np.uint8)
>>> pred[3:5, 2:4, 2:4] = 1; dis[3, 2, 2] = 0.8; dis[0] = 0.9   # slice 0: empty end
>>> cfg = FocusConfig(margin_xy=0, margin_z=1)
>>> focus_profile(dis, pred, num_classes=2, config=cfg).round(2).tolist()
[0.0, 0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InvalidVolumeError

__all__ = ["FocusConfig", "class_regions", "class_slice_uncertainty", "focus_profile", "PROFILE_LABEL"]

#: How a user interface should name :func:`focus_profile` (minimap, heat-map legend, ranking).
PROFILE_LABEL = "disagreement on the structure (top 10% of its band, per slice)"


@dataclass(frozen=True)
class FocusConfig:
    """How far around a predicted structure its disagreement counts.

    Attributes
    ----------
    margin_xy : int
        In-plane dilation of each class's region (voxels): the border's outside belongs to the
        decision too.
    margin_z : int
        Dilation along the slicing axis (slices): the slice past the predicted end may be where
        the structure really ends.
    top_fraction : float
        Fraction of a band's voxels on a slice that are averaged (the most uncertain ones).
    trim_overreach : float
        Cut a class's slices predicted on more than this many times its largest annotated
        cross-section out of its structure before the components are chosen (0: off; needs
        reference areas, i.e. the class annotated somewhere).
    """

    margin_xy: int = 2
    margin_z: int = 2
    top_fraction: float = 0.1
    trim_overreach: float = 0.0


def _check(disagreement: np.ndarray, predicted: np.ndarray, labels: np.ndarray | None, axis: int) -> int:
    if disagreement.ndim != 3:
        raise InvalidVolumeError(f"expected a 3D disagreement map (z, y, x), got {disagreement.ndim}D")
    if predicted.shape != disagreement.shape:
        raise InvalidVolumeError(
            f"predicted labels of shape {predicted.shape} do not match the disagreement {disagreement.shape}"
        )
    if labels is not None and np.shape(labels) != disagreement.shape:
        raise InvalidVolumeError(f"label map of shape {np.shape(labels)} does not match {disagreement.shape}")
    if axis not in (0, 1, 2):
        raise InvalidVolumeError(f"axis must be 0, 1 or 2, got {axis}")
    return axis


def _structure(mask: np.ndarray, anchors: np.ndarray | None) -> np.ndarray:
    """Keep the components of ``mask`` that touch ``anchors`` (annotated voxels of the class).

    Without any such component the largest one is kept; scattered false positives elsewhere
    are dropped.
    """
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    if anchors is not None and anchors.any():
        keep = np.unique(lab[anchors & mask])
        keep = keep[keep > 0]
        if keep.size:
            return np.isin(lab, keep)
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def class_regions(
    predicted: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    num_classes: int,
    axis: int = 0,
    config: FocusConfig = FocusConfig(),
    ignore_index: int = IGNORE_INDEX,
    reference_areas: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One boolean band per foreground class (index 0 of the list is class 1); see :func:`_regions`."""
    return [band for _, band in _regions(predicted, labels, num_classes=num_classes, axis=axis,
                                         config=config, ignore_index=ignore_index,
                                         reference_areas=reference_areas)]


def _trim(mask: np.ndarray, axis: int, limit: float) -> np.ndarray:
    """Return ``mask`` without its slices (along ``axis``) holding more than ``limit`` voxels."""
    other = tuple(a for a in range(3) if a != axis)
    over = mask.sum(axis=other) > limit
    if not over.any():
        return mask
    shape = [1, 1, 1]
    shape[axis] = over.size
    return mask & ~over.reshape(shape)


def _regions(
    predicted: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    num_classes: int,
    axis: int = 0,
    config: FocusConfig = FocusConfig(),
    ignore_index: int = IGNORE_INDEX,
    reference_areas: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(structure, band)`` per foreground class ``1..num_classes-1`` (index 0 of the list is class 1).

    Parameters
    ----------
    predicted : numpy.ndarray
        The model's class map ``(z, y, x)``.
    labels : numpy.ndarray, optional
        The sparse annotation (``ignore_index`` = not annotated): anchors the real structure and
        adds the annotated voxels of each class to its band.
    reference_areas : numpy.ndarray, optional
        ``[C-1]`` largest annotated cross-section of each class over every case (0: unknown);
        with ``config.trim_overreach`` it says which predicted slices cannot be right.
    """
    pred = np.asarray(predicted)
    lab = None if labels is None else np.asarray(labels)
    radius = [max(0, int(config.margin_xy))] * 3
    radius[axis] = max(0, int(config.margin_z))
    # a box: dilation by radius[a] voxels along axis a
    footprint = np.ones([2 * ri + 1 for ri in radius], dtype=bool)
    near_fg = None
    if lab is not None:  # annotated foreground of any class, and its surroundings
        near_fg = ndimage.binary_dilation((lab > 0) & (lab != ignore_index), structure=footprint)
    bands = []
    for c in range(1, num_classes):
        anchors = None if lab is None else (lab == c)
        # a class not annotated yet is anchored by its annotated neighbours (adjacent parts of
        # one organ, e.g. the hippocampus' head and body), not by its largest blob
        raw = pred == c
        ref = 0.0 if reference_areas is None or c - 1 >= len(reference_areas) else float(reference_areas[c - 1])
        if config.trim_overreach > 0 and ref > 0:
            raw = _trim(raw, axis, config.trim_overreach * ref)
        mask = _structure(raw, anchors if anchors is None or anchors.any() else near_fg)
        if anchors is not None:
            mask = mask | anchors
        band = mask
        if max(radius) > 0 and mask.any():
            band = ndimage.binary_dilation(mask, structure=footprint)
        bands.append((mask, band))
    return bands


def class_slice_uncertainty(
    disagreement: np.ndarray,
    predicted: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    num_classes: int,
    axis: int = 0,
    config: FocusConfig = FocusConfig(),
    ignore_index: int = IGNORE_INDEX,
    return_area: bool = False,
    reference_areas: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Disagreement inside each class's band, per slice: float64 ``[n_slices, num_classes - 1]``.

    Column ``c - 1`` is class ``c``; a slice where the class's band is empty scores 0. With
    ``return_area``, also the structure's voxels per slice and class (same shape): how much of
    the class a label of that slice would show (the ranking weighs thin ends down with it).
    """
    dis = np.asarray(disagreement)
    pred = np.asarray(predicted)
    ax = _check(dis, pred, labels, axis)
    regions = _regions(pred, labels, num_classes=num_classes, axis=ax, config=config,
                       ignore_index=ignore_index, reference_areas=reference_areas)
    d = np.moveaxis(dis, ax, 0)
    out = np.zeros((d.shape[0], max(num_classes - 1, 0)), dtype=np.float64)
    area = np.zeros_like(out)
    for ci, (structure, band) in enumerate(regions):
        area[:, ci] = np.moveaxis(structure, ax, 0).sum(axis=(1, 2))
        b = np.moveaxis(band, ax, 0)
        for z in np.flatnonzero(b.any(axis=(1, 2))):
            values = d[z][b[z]].astype(np.float64)
            k = max(1, int(np.ceil(config.top_fraction * values.size)))
            out[z, ci] = np.partition(values, values.size - k)[values.size - k :].mean()
    return (out, area) if return_area else out


def focus_profile(
    disagreement: np.ndarray,
    predicted: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    num_classes: int,
    axis: int = 0,
    config: FocusConfig = FocusConfig(),
) -> np.ndarray:
    """Return the per-slice quantity shown everywhere (the ranking's, the minimap's).

    It is the maximum over classes of :func:`class_slice_uncertainty` (float64
    ``[n_slices]``; 0 away from every structure).
    """
    per_class = class_slice_uncertainty(disagreement, predicted, labels, num_classes=num_classes,
                                        axis=axis, config=config)
    return per_class.max(axis=1) if per_class.shape[1] else np.zeros(per_class.shape[0])
