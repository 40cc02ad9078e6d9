"""Segmentation metrics: Dice, Jaccard, HD95 and ASD, per class, in millimetres.

Surface distances follow the convention of MONAI and the semi-supervised
segmentation literature: a mask's surface is its voxels that have a background
6-neighbour (``mask & ~erosion(mask)``, with the image border counting as
background); distances between surfaces come from a Euclidean distance transform
with the voxel spacing, so they are in mm (pass ``spacing=(1, 1, 1)`` for voxels).

- **HD95**: the larger of the two directed 95th percentiles (pred->gt, gt->pred).
- **ASD**: the *symmetric* average surface distance: the mean of all pred->gt and
  gt->pred surface distances pooled (MONAI ``symmetric=True``).

Empty masks have well-defined results (and tests pin them):

==================  =========  =========  =====  =====
case                dice       jaccard    hd95   asd
==================  =========  =========  =====  =====
both empty          1.0        1.0        0.0    0.0
one of them empty   0.0        0.0        NaN    NaN
==================  =========  =========  =====  =====

NaN means "undefined", not "bad": means over cases skip NaN (:func:`numpy.nanmean`)
and report how many cases were defined. Voxels where the ground truth holds the
ignore value (255, not annotated) are left out of every metric.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from barl_core.data.case_names import case_name_from_file
from barl_core.data.discovery import volume_files
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import EmptyDatasetError, GeometryMismatchError, InputFileError
from barl_core.io.volume import Volume, check_same_grid, read_volume

__all__ = [
    "METRIC_NAMES",
    "dice",
    "jaccard",
    "surface_distances",
    "hd95",
    "average_surface_distance",
    "binary_metrics",
    "evaluate_case",
    "evaluate_pairs",
    "evaluate_folders",
    "match_files",
    "summarize",
]

METRIC_NAMES = ("dice", "jaccard", "hd95", "asd")
_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise GeometryMismatchError(
            f"prediction shape {pred.shape} differs from ground truth {gt.shape}"
        )
    return pred, gt


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    pred, gt = _pair(pred, gt)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty)."""
    pred, gt = _pair(pred, gt)
    union = int(np.logical_or(pred, gt).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, gt).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_STRUCTURE, border_value=0)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances ``(pred -> gt, gt -> pred)`` in the units of ``spacing``.

    Works on the masks' joint bounding box (plus one voxel), which gives the same
    numbers as the full volume: every surface voxel lies inside it and the margin
    keeps the erosion from inventing surfaces at the crop's edge.
    Both masks must be non-empty.
    """
    pred, gt = _pair(pred, gt)
    if not pred.any() or not gt.any():
        raise ValueError("surface distances need two non-empty masks")
    both = pred | gt
    box = []
    for axis in range(both.ndim):
        other = tuple(a for a in range(both.ndim) if a != axis)
        nz = np.flatnonzero(both.any(axis=other))
        box.append(slice(max(0, nz[0] - 1), min(both.shape[axis], nz[-1] + 2)))
    pred, gt = pred[tuple(box)], gt[tuple(box)]
    sp = tuple(float(s) for s in spacing)
    sp_pred, sp_gt = _surface(pred), _surface(gt)
    d_to_gt = ndimage.distance_transform_edt(~sp_gt, sampling=sp)
    d_to_pred = ndimage.distance_transform_edt(~sp_pred, sampling=sp)
    return d_to_gt[sp_pred], d_to_pred[sp_gt]


def _empty_distance(pred: np.ndarray, gt: np.ndarray) -> float | None:
    p, g = bool(pred.any()), bool(gt.any())
    if not p and not g:
        return 0.0
    if p != g:
        return math.nan
    return None


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """95th-percentile symmetric Hausdorff distance (0 both empty, NaN one empty)."""
    pred, gt = _pair(pred, gt)
    special = _empty_distance(pred, gt)
    if special is not None:
        return special
    a, b = surface_distances(pred, gt, spacing)
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def average_surface_distance(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> float:
    """Symmetric average surface distance (0 both empty, NaN one empty)."""
    pred, gt = _pair(pred, gt)
    special = _empty_distance(pred, gt)
    if special is not None:
        return special
    a, b = surface_distances(pred, gt, spacing)
    return float(np.concatenate([a, b]).mean())


def binary_metrics(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> dict[str, float]:
    """All four metrics of one binary pair (surface distances computed once)."""
    pred, gt = _pair(pred, gt)
    out = {"dice": dice(pred, gt), "jaccard": jaccard(pred, gt)}
    special = _empty_distance(pred, gt)
    if special is not None:
        out["hd95"] = out["asd"] = special
    else:
        a, b = surface_distances(pred, gt, spacing)
        out["hd95"] = float(max(np.percentile(a, 95), np.percentile(b, 95)))
        out["asd"] = float(np.concatenate([a, b]).mean())
    return out


def _class_map(
    classes, pred: np.ndarray, gt: np.ndarray, ignore_index: int | None
) -> dict[int, str]:
    if classes is None:
        values = set(np.unique(gt).tolist()) | set(np.unique(pred).tolist())
        values.discard(0)
        if ignore_index is not None:
            values.discard(ignore_index)
        return {int(v): str(int(v)) for v in sorted(values)}
    if isinstance(classes, Mapping):
        return {int(k): str(v) for k, v in classes.items()}
    return {int(c): str(int(c)) for c in classes}


def evaluate_case(
    pred: np.ndarray | Volume,
    gt: np.ndarray | Volume,
    spacing: Sequence[float] | None = None,
    classes: Sequence[int] | Mapping[int, str] | None = None,
    *,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict:
    """Per-class metrics of one label map against its ground truth.

    Parameters
    ----------
    pred, gt : array or Volume
        Label maps on the same grid. With Volumes, the grids are checked and the
        spacing defaults to the ground truth's.
    spacing : sequence of float, optional
        ``(z, y, x)`` mm; ``(1, 1, 1)`` for voxel units. Default: the Volume's, else 1.
    classes : sequence of int or mapping int -> name, optional
        Classes to score; default every non-zero value present in either map.
    ignore_index : int or None
        Ground-truth value marking unannotated voxels, left out of every metric.

    Returns
    -------
    dict
        ``{"classes": {name: {"label": int, "dice", "jaccard", "hd95", "asd"}},
        "mean": {metric: nanmean over classes}, "spacing": [...]}``

    Raises
    ------
    GeometryMismatchError
        Shapes (or, for Volumes, grids) differ.
    """
    if isinstance(pred, Volume) and isinstance(gt, Volume):
        check_same_grid(gt, pred, what="prediction")
    if spacing is None:
        spacing = (
            gt.spacing
            if isinstance(gt, Volume)
            else (pred.spacing if isinstance(pred, Volume) else (1.0, 1.0, 1.0))
        )
    p = np.asarray(pred.array if isinstance(pred, Volume) else pred)
    g = np.asarray(gt.array if isinstance(gt, Volume) else gt)
    if p.shape != g.shape:
        raise GeometryMismatchError(
            f"prediction shape {p.shape} differs from ground truth {g.shape}"
        )
    valid = None
    if ignore_index is not None and (g == ignore_index).any():
        valid = g != ignore_index
    names = _class_map(classes, p, g, ignore_index)
    per_class: dict[str, dict] = {}
    for label, name in names.items():
        pm, gm = p == label, g == label
        if valid is not None:
            pm &= valid
        per_class[name] = {"label": label, **binary_metrics(pm, gm, spacing)}
    return {
        "classes": per_class,
        "mean": _nanmean_rows(list(per_class.values())),
        "spacing": [float(s) for s in spacing],
    }


def _nanmean_rows(rows: list[dict]) -> dict[str, float]:
    out = {}
    for m in METRIC_NAMES:
        vals = np.array([r[m] for r in rows if m in r], dtype=float)
        out[m] = float(np.nanmean(vals)) if vals.size and not np.isnan(vals).all() else math.nan
    return out


def summarize(cases: Mapping[str, dict]) -> dict:
    """Mean per class (and overall) over cases, skipping NaN; counts defined values."""
    by_class: dict[str, list[dict]] = {}
    for res in cases.values():
        for name, row in res["classes"].items():
            by_class.setdefault(name, []).append(row)
    per_class = {}
    for name, rows in by_class.items():
        entry = _nanmean_rows(rows)
        entry["n"] = len(rows)
        entry["n_defined_hd95"] = int(sum(not math.isnan(r["hd95"]) for r in rows))
        per_class[name] = entry
    return {"classes": per_class, "mean": _nanmean_rows(list(per_class.values()))}


# --------------------------------------------------------------------------- files
def _case_key(path: Path) -> str:
    return case_name_from_file(path.name)


def _volume_files(p: Path) -> dict[str, Path]:
    try:
        exists, is_file = p.exists(), p.is_file()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise InputFileError(f"{p}: cannot access: {exc.strerror or exc}") from None
    if not exists:
        raise InputFileError(f"{p}: no such file or folder")
    if is_file:
        return {_case_key(p): p}
    files = {}
    for f in volume_files(p):
        key = _case_key(f)
        if key in files:
            raise InputFileError(f"{p}: two files for case {key!r} ({files[key].name}, {f.name})")
        files[key] = f
    return files


def match_files(
    pred: str | os.PathLike, gt: str | os.PathLike
) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """Pair prediction and ground-truth files by case name.

    Names match after removing the extension and an nnU-Net channel suffix
    (``_0000``). Two single files are paired whatever their names.

    Returns
    -------
    pairs : list of (name, pred_path, gt_path)
    missing_pred : ground-truth cases without a prediction
    extra_pred : prediction files without ground truth (e.g. disagreement maps)
    """
    pp, gp = Path(pred), Path(gt)
    pf, gf = _volume_files(pp), _volume_files(gp)
    if pp.is_file() and gp.is_file():
        return [(next(iter(gf)), pp, gp)], [], []
    common = sorted(set(pf) & set(gf))
    return (
        [(n, pf[n], gf[n]) for n in common],
        sorted(set(gf) - set(pf)),
        sorted(set(pf) - set(gf)),
    )


def evaluate_pairs(
    pairs: Sequence[tuple[str, str | os.PathLike, str | os.PathLike]],
    *,
    classes: Sequence[int] | Mapping[int, str] | None = None,
    voxel_units: bool = False,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict:
    """Evaluate ``(name, pred_path, gt_path)`` pairs; per case and mean per class.

    Raises
    ------
    EmptyDatasetError
        No pair.
    InputFileError, GeometryMismatchError
        Unreadable file; prediction not on the ground truth's grid.
    """
    if not pairs:
        raise EmptyDatasetError(
            "nothing to evaluate: no prediction matches a ground-truth file by name"
        )
    cases = {}
    for name, pp, gp in pairs:
        gt = read_volume(gp)
        pr = read_volume(pp)
        check_same_grid(gt, pr, what=f"prediction of case {name!r}")
        spacing = (1.0, 1.0, 1.0) if voxel_units else gt.spacing
        cases[name] = evaluate_case(pr.array, gt.array, spacing, classes, ignore_index=ignore_index)
    # without explicit classes a case scores the classes present in its own maps, so a
    # class absent from both maps of a case does not count there as a perfect 1.0
    return {"cases": cases, **summarize(cases), "units": "voxel" if voxel_units else "mm"}


def evaluate_folders(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    *,
    classes: Sequence[int] | Mapping[int, str] | None = None,
    voxel_units: bool = False,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict:
    """Match files by name (see :func:`match_files`) and evaluate them.

    The result also lists ``missing`` (ground truth without prediction) and
    ``unmatched`` (predictions without ground truth).
    """
    pairs, missing, extra = match_files(pred, gt)
    result = evaluate_pairs(
        pairs, classes=classes, voxel_units=voxel_units, ignore_index=ignore_index
    )
    result["missing"] = missing
    result["unmatched"] = extra
    return result
