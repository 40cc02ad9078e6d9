"""Working resolution: resample a volume to a target spacing and map results back exactly.

CBCT arrives at 0.1-0.4 mm with hundreds of voxels a side; training and inference may run
at a coarser *working* spacing. Everything the user sees must nevertheless land on the
original grid, voxel for voxel, so the way back (:func:`resample_to_reference`) resamples
onto the reference volume's own grid (shape, spacing, origin, direction) rather than
"undoing" a zoom factor, which would drift by rounding.

Images use linear interpolation (B-spline rings at sharp tooth/bone edges); label maps use
nearest neighbour, so the ignore value (255, "nobody annotated this voxel") stays ignore
and never blends into a class. Voxels outside the source extent become the image minimum
(images) or ``ignore_index`` (labels going to the working grid) / ``0`` (predictions going
back to the original grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import GeometryMismatchError, InvalidVolumeError
from barl_core.io.volume import Volume

__all__ = [
    "resample_volume",
    "resample_to_reference",
    "resampled_shape",
    "needs_resampling",
]

_SPACING_RTOL = 1e-6


def _as_spacing(target_spacing: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(s) for s in target_spacing)
    if len(sp) != 3 or not all(np.isfinite(sp)) or min(sp) <= 0:
        raise InvalidVolumeError(
            f"target spacing must be three positive numbers (z, y, x) in mm, got {tuple(target_spacing)}"
        )
    return sp  # type: ignore[return-value]


def needs_resampling(volume: Volume, target_spacing: Sequence[float] | None) -> bool:
    """Return False when ``target_spacing`` is None or already the volume's spacing.

    Skipping the identity resample keeps the native path bit-exact.
    """
    if target_spacing is None:
        return False
    sp = _as_spacing(target_spacing)
    return not np.allclose(volume.spacing, sp, rtol=_SPACING_RTOL, atol=0)


def resampled_shape(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> tuple[int, int, int]:
    """Grid size ``(z, y, x)`` covering the same physical extent at ``target_spacing``."""
    sp = _as_spacing(target_spacing)
    return tuple(  # type: ignore[return-value]
        max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, sp, strict=True)
    )


def _resample_image(
    image: sitk.Image,
    size_xyz: Sequence[int],
    spacing_xyz: Sequence[float],
    origin: Sequence[float],
    direction: Sequence[float],
    is_label: bool,
    default_value: float,
) -> sitk.Image:
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in size_xyz])
    f.SetOutputSpacing([float(s) for s in spacing_xyz])
    f.SetOutputOrigin([float(o) for o in origin])
    f.SetOutputDirection([float(d) for d in direction])
    f.SetTransform(sitk.Transform())
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear)
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(image.GetPixelID())
    return f.Execute(image)


def resample_volume(
    volume: Volume,
    target_spacing: Sequence[float] | None,
    is_label: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> Volume:
    """Resample ``volume`` to ``target_spacing`` (z, y, x), same origin and direction.

    Parameters
    ----------
    volume : Volume
        Image or label map.
    target_spacing : sequence of 3 floats or None
        Working voxel size in mm, array order ``(z, y, x)``. None (or the volume's own
        spacing) returns the volume unchanged, so the native path stays exact.
    is_label : bool
        Nearest neighbour (labels keep their values, ignore stays ignore) instead of linear.
    ignore_index : int
        Value given to label voxels that fall outside the source extent.

    Returns
    -------
    Volume
        Same physical extent (rounded to whole voxels), origin and direction. Images come
        back as float32; labels keep their integer dtype.
    """
    if not needs_resampling(volume, target_spacing):
        return volume
    sp = _as_spacing(target_spacing)  # type: ignore[arg-type]
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise InvalidVolumeError(f"expected a 3D volume to resample, got {arr.ndim}D")
    if not is_label:
        arr = arr.astype(np.float32, copy=False)
        default = float(arr.min()) if arr.size else 0.0
    else:
        default = float(ignore_index)
    src = volume.with_array(np.ascontiguousarray(arr)).to_sitk()
    size_zyx = resampled_shape(volume.shape, volume.spacing, sp)
    out = _resample_image(
        src, size_zyx[::-1], sp[::-1], volume.origin, volume.direction, is_label, default
    )
    out_arr = sitk.GetArrayFromImage(out)
    if is_label:
        out_arr = out_arr.astype(volume.array.dtype, copy=False)
    return Volume(
        array=out_arr,
        spacing=sp,
        origin=tuple(volume.origin),  # type: ignore[arg-type]
        direction=tuple(volume.direction),
        path=volume.path,
        metadata=dict(volume.metadata),
    )


def _geometry_of(obj: Volume | dict) -> dict:
    if isinstance(obj, Volume):
        return obj.geometry()
    if not isinstance(obj, dict) or not {"spacing", "origin", "direction"} <= set(obj):
        raise GeometryMismatchError(
            "from_volume_geometry must be a Volume or a geometry dict with spacing, origin, direction"
        )
    return obj


def resample_to_reference(
    array: np.ndarray,
    from_volume_geometry: Volume | dict,
    reference: Volume,
    is_label: bool,
    default_value: float = 0.0,
) -> np.ndarray:
    """Map ``array`` (on a working grid) onto ``reference``'s grid exactly.

    Parameters
    ----------
    array : numpy.ndarray
        ``(z, y, x)`` or channel-first ``(c, z, y, x)`` data on the working grid.
    from_volume_geometry : Volume or dict
        The working grid (a :class:`Volume`, or ``Volume.geometry()``).
    reference : Volume
        The original grid; only its geometry is used.
    is_label : bool
        Nearest neighbour for class maps, linear for probabilities/disagreement.
    default_value : float
        Value for reference voxels outside the working extent (0: background).

    Returns
    -------
    numpy.ndarray
        Shape ``reference.shape`` (with the leading channel axis kept), dtype of ``array``.
        When the working grid already is the reference grid the array is returned as is.
    """
    geom = _geometry_of(from_volume_geometry)
    arr = np.asarray(array)
    if arr.ndim not in (3, 4):
        raise InvalidVolumeError(f"expected a 3D or channel-first 4D array, got {arr.ndim}D")
    spatial = tuple(arr.shape[-3:])
    if "shape" in geom and tuple(geom["shape"]) != spatial:
        raise GeometryMismatchError(
            f"array of shape {spatial} does not match its working grid {tuple(geom['shape'])}"
        )
    same = (
        spatial == reference.shape
        and np.allclose(geom["spacing"], reference.spacing, rtol=_SPACING_RTOL, atol=0)
        and np.allclose(geom["origin"], reference.origin, atol=1e-6)
        and np.allclose(geom["direction"], reference.direction, atol=1e-9)
    )
    if same:
        return arr
    if arr.ndim == 4:
        return np.stack(
            [resample_to_reference(c, geom, reference, is_label, default_value) for c in arr]
        )
    dtype = arr.dtype
    work = arr
    if not is_label and dtype not in (np.float32, np.float64):
        work = arr.astype(np.float32)  # SimpleITK has no float16
    if work.dtype == np.bool_:
        work = work.astype(np.uint8)
    src = Volume.from_geometry(np.ascontiguousarray(work), {k: geom[k] for k in ("spacing", "origin", "direction")})
    out = _resample_image(
        src.to_sitk(),
        reference.shape[::-1],
        reference.spacing[::-1],
        reference.origin,
        reference.direction,
        is_label,
        default_value,
    )
    return sitk.GetArrayFromImage(out).astype(dtype, copy=False)
