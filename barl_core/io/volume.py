"""Volume input/output on SimpleITK, keeping the exact geometry.

Axis convention (used everywhere in napari-barl)
-----------------------------------------------
Arrays are indexed ``(z, y, x)``: ``array[k, j, i]`` is the voxel at ITK index
``(i, j, k)``. ``Volume.spacing`` follows the *array* order ``(z, y, x)`` so that
it can be passed to napari's ``scale`` and to distance transforms directly.
``origin`` and ``direction`` stay in ITK's physical convention (LPS, ``(x, y, z)``,
direction row-major 3x3) because they describe physical space, not the array.
``Volume.affine_zyx()`` gives the 4x4 map from array index to physical point in
the same ``(z, y, x)`` order, which is what napari's ``affine`` expects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import (
    GeometryMismatchError,
    InputFileError,
    InvalidVolumeError,
    LabelValueError,
    OutputFileError,
)
from barl_core.io.atomic import atomic_path, describe_os_error, remove_stale_temporaries
from barl_core.io.native_stderr import held_native_stderr
from barl_core.io.nifti_check import check_nifti
from barl_core.io.sitk_files import (
    MAX_VOXELS,
    SUPPORTED_EXTENSIONS,
    read_image,
    verify_written,
    write_mhd_atomic,
)

__all__ = [
    "Volume",
    "read_volume",
    "write_volume",
    "write_labels",
    "check_same_grid",
    "label_dtype",
    "check_label_values",
    "all_finite",
    "is_supported_path",
    "strip_extension",
    "atomic_path",
    "remove_stale_temporaries",
    "SUPPORTED_EXTENSIONS",
    "MAX_VOXELS",
]

_GEOMETRY_ATOL = 1e-5


@dataclass
class Volume:
    """A 3D array with its physical geometry.

    Parameters
    ----------
    array : numpy.ndarray
        Voxel data indexed ``(z, y, x)``.
    spacing : tuple of float
        Voxel size in mm, ``(z, y, x)`` (array order).
    origin : tuple of float
        Physical position of voxel ``(0, 0, 0)``, ITK ``(x, y, z)`` LPS.
    direction : tuple of float
        Row-major 3x3 direction cosines, ITK convention.
    path : Path or None
        Where the volume was read from, if anywhere.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    path: Path | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return the array shape ``(z, y, x)``."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    def with_array(self, array: np.ndarray) -> Volume:
        """Return a volume of the same geometry with other voxels (a label map, a prediction)."""
        if tuple(array.shape) != self.shape:
            raise GeometryMismatchError(
                f"array of shape {tuple(array.shape)} does not fit a grid of shape {self.shape}"
            )
        return replace(self, array=array, metadata=dict(self.metadata))

    def geometry(self) -> dict:
        """JSON-friendly geometry (for layer metadata and checkpoints)."""
        return {
            "shape": list(self.shape),
            "spacing": [float(s) for s in self.spacing],
            "origin": [float(o) for o in self.origin],
            "direction": [float(d) for d in self.direction],
        }

    @classmethod
    def from_geometry(cls, array: np.ndarray, geometry: dict, path: Path | None = None) -> Volume:
        """Build a volume from an array and a geometry dict (as :meth:`geometry` returns)."""
        vol = cls(
            array=array,
            spacing=tuple(float(s) for s in geometry["spacing"]),  # type: ignore[arg-type]
            origin=tuple(float(o) for o in geometry["origin"]),  # type: ignore[arg-type]
            direction=tuple(float(d) for d in geometry["direction"]),
            path=path,
        )
        if "shape" in geometry and tuple(geometry["shape"]) != vol.shape:
            raise GeometryMismatchError(
                f"array of shape {vol.shape} does not match the recorded grid {tuple(geometry['shape'])}"
            )
        return vol

    def affine_zyx(self) -> np.ndarray:
        """4x4 matrix mapping a ``(z, y, x, 1)`` index to a ``(z, y, x, 1)`` physical point."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        sp_xyz = np.asarray(self.spacing[::-1], dtype=float)
        m_xyz = d @ np.diag(sp_xyz)
        flip = np.eye(3)[::-1]
        m = np.eye(4)
        m[:3, :3] = flip @ m_xyz @ flip
        m[:3, 3] = np.asarray(self.origin, dtype=float)[::-1]
        return m

    def to_sitk(self) -> sitk.Image:
        """Return the SimpleITK image (spacing reversed to ITK's ``(x, y, z)``)."""
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing([float(s) for s in self.spacing[::-1]])
        img.SetOrigin([float(o) for o in self.origin])
        img.SetDirection([float(d) for d in self.direction])
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, path: Path | None = None) -> Volume:
        """Build a volume from a 3D SimpleITK image (``(z, y, x)`` array, geometry kept)."""
        if image.GetDimension() != 3:
            raise InvalidVolumeError(
                f"{path or 'volume'}: expected a 3D volume, got {image.GetDimension()}D"
            )
        if "complex" in image.GetPixelIDTypeAsString().lower():
            raise InvalidVolumeError(
                f"{path or 'volume'}: complex-valued voxels are not supported; "
                "save the magnitude as a real-valued volume"
            )
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InvalidVolumeError(
                f"{path or 'volume'}: expected one value per voxel, got "
                f"{image.GetNumberOfComponentsPerPixel()} (vector/RGB images are not supported)"
            )
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=tuple(float(s) for s in image.GetSpacing()[::-1]),  # type: ignore[arg-type]
            origin=tuple(float(o) for o in image.GetOrigin()),  # type: ignore[arg-type]
            direction=tuple(float(d) for d in image.GetDirection()),
            path=path,
        )


def strip_extension(name: str) -> str:
    """``case_0000.nii.gz`` -> ``case_0000`` (knows the double extension)."""
    low = name.lower()
    for ext in SUPPORTED_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def is_supported_path(path: str | os.PathLike) -> bool:
    """Return True for a supported file extension or a folder holding DICOM files."""
    p = Path(path)
    if p.is_dir():
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)))
    return p.name.lower().endswith(SUPPORTED_EXTENSIONS)


def read_volume(
    path: str | os.PathLike,
    *,
    series_id: str | None = None,
    check_finite: bool = True,
) -> Volume:
    """Read a 3D volume (NIfTI, NRRD, MHA/MHD file, or a DICOM series folder).

    Raises
    ------
    InputFileError
        Missing, unreadable, corrupt or unsupported file; absurd header sizes.
    InvalidVolumeError
        Not 3D, not scalar, or (with ``check_finite``) NaN/Inf voxels.
    """
    p = Path(path)
    try:
        exists = p.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise InputFileError(f"{p}: cannot access: {exc.strerror or exc}") from None
    if not exists:
        raise InputFileError(f"{p}: no such file or folder")
    held = None
    try:
        with held_native_stderr() as held:  # ITK prints some reasons instead of raising them
            image = read_image(p, series_id)
    except (InputFileError, InvalidVolumeError):
        raise
    except RuntimeError as exc:  # SimpleITK reports every IO failure as RuntimeError
        lines = str(exc).strip().splitlines()
        detail = (held.first() if held else "") or next(
            (ln for ln in lines if "rror" in ln and "Exception thrown" not in ln), lines[-1] if lines else ""
        )
        raise InputFileError(
            f"{p}: cannot read this file (corrupt, truncated or not an image): {detail}".strip()
        ) from None
    except (OSError, MemoryError) as exc:
        raise InputFileError(f"{p}: cannot read this file: {describe_os_error(exc)}") from None
    held.release()
    vol = Volume.from_sitk(image, path=p)
    if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")):
        # ITK reads truncated .nii.gz without error and turns NaN/Inf into 0: look ourselves
        found = check_nifti(p, check_finite=check_finite)
        if found.problem:
            raise InputFileError(f"{p}: cannot read this file ({found.problem})")
        if found.nonfinite:
            raise InvalidVolumeError(
                f"{p}: holds {found.nonfinite} NaN/Inf voxels; clean the volume first"
            )
    if check_finite and not all_finite(vol.array):
        n = int(vol.array.size - np.count_nonzero(np.isfinite(vol.array)))
        raise InvalidVolumeError(f"{p}: holds {n} NaN/Inf voxels; clean the volume first")
    return vol


def all_finite(array: np.ndarray) -> bool:
    """Return True unless a float array holds NaN or Inf.

    ``min``/``max`` propagate NaN and expose +-Inf, so a 512^3 volume is checked without the
    full-size boolean temporary that ``np.isfinite(a).all()`` allocates.
    """
    a = np.asarray(array)
    if a.dtype.kind not in "fc" or a.size == 0:
        return True
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def label_dtype(max_value: int) -> np.dtype:
    """Smallest unsigned integer type for label maps (readers expect unsigned)."""
    if max_value < 0:
        raise InvalidVolumeError("label maps cannot hold negative values")
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise InvalidVolumeError(f"label value {max_value} is too large")


def write_volume(
    volume: Volume, path: str | os.PathLike, *, compress: bool = True, verify_voxels: bool = False
) -> Path:
    """Write a volume with its geometry; verified, then atomic (temporary file, then rename).

    The temporary is read back before it replaces anything: its header must declare this
    grid and pixel type, a NIfTI file must hold all its data (streamed, bounded memory),
    and with ``verify_voxels`` (label maps) every voxel must equal what was meant. So a
    short write (a full disk; SimpleITK's NIfTI writer only *prints* ``NWAD: wrote only
    ...`` and returns normally) never replaces a saved file.

    Raises
    ------
    OutputFileError
        The file cannot be written or does not read back as written; an existing file at
        ``path`` is unchanged and no temporary is left.
    """
    p = Path(path)
    if not p.name.lower().endswith(SUPPORTED_EXTENSIONS):
        raise OutputFileError(f"{p}: unsupported output type (use {', '.join(SUPPORTED_EXTENSIONS)})")
    if volume.array.ndim != 3:
        raise InvalidVolumeError(f"{p}: expected a 3D array, got {volume.array.ndim}D")
    image = volume.to_sitk()
    expected = volume.array if verify_voxels else None

    def _verify(tmp: Path) -> None:
        verify_written(tmp, image, expected)

    failure: Exception | None = None
    with held_native_stderr() as held:  # ITK prints some write failures instead of raising
        try:
            if p.name.lower().endswith(".mhd"):
                write_mhd_atomic(image, p, compress, _verify)
            else:
                with atomic_path(p, verify=_verify) as tmp:
                    sitk.WriteImage(image, str(tmp), compress)
        except (OutputFileError, RuntimeError, OSError) as exc:
            failure = exc
    if failure is None:
        held.release()
        return p
    if isinstance(failure, OutputFileError):
        message = str(failure)
    elif isinstance(failure, RuntimeError):
        message = f"{p}: cannot write: {str(failure).strip().splitlines()[-1]}"
    else:  # no permission, disk full, name too long, ...
        message = f"{p}: cannot write: {describe_os_error(failure)}"
    native = held.first()
    raise OutputFileError(message + (f" [{native}]" if native and native not in message else ""))


def write_labels(
    labels: np.ndarray, reference: Volume, path: str | os.PathLike, *, compress: bool = True
) -> Path:
    """Write a label map on ``reference``'s grid as unsigned integers."""
    labels = np.asarray(labels)
    if tuple(labels.shape) != reference.shape:
        raise GeometryMismatchError(
            f"label map of shape {tuple(labels.shape)} does not match the image grid {reference.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        rounded = np.rint(labels)
        if not np.array_equal(rounded, labels):
            raise InvalidVolumeError(f"{path}: label maps must hold whole numbers")
        labels = rounded
    max_value = int(labels.max()) if labels.size else 0
    min_value = int(labels.min()) if labels.size else 0
    if min_value < 0:
        raise InvalidVolumeError(f"{path}: label maps cannot hold negative values")
    out = reference.with_array(labels.astype(label_dtype(max_value), copy=False))
    return write_volume(out, path, compress=compress, verify_voxels=True)


def check_label_values(
    labels: np.ndarray,
    num_classes: int | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
    what: str = "label map",
) -> np.ndarray:
    """Refuse label values that are not classes, before anything is saved.

    Why: casting to ``uint8`` turns -1 into 255 (the ignore value) and 0.7 or NaN into 0
    (background) without a word, and the slice would stay recorded as annotated. So a
    label array must hold whole, finite, non-negative numbers, each a class
    ``0..num_classes-1`` or ``ignore_index``.

    Returns
    -------
    numpy.ndarray
        The labels as the smallest unsigned integer type that holds them.

    Raises
    ------
    LabelValueError
        NaN/Inf, fractions, negative values, or values that are neither a class nor the
        ignore value; the message names up to five of them.
    """
    a = np.asarray(labels)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.dtype.kind not in "uif":
        raise LabelValueError(f"{what}: labels must be numbers, not {a.dtype}")
    if a.size == 0:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        if not all_finite(a):
            raise LabelValueError(f"{what}: holds NaN or infinite label values")
        if not np.array_equal(np.rint(a), a):
            odd = np.unique(a[np.rint(a) != a])[:5]
            raise LabelValueError(f"{what}: label values must be whole numbers, got {odd.tolist()}")
    lo, hi = a.min(), a.max()
    if lo < 0:
        raise LabelValueError(f"{what}: negative label values ({int(lo)}) are not classes")
    if num_classes is not None:
        bad = (a != ignore_index) & (a >= num_classes)
        if bad.any():
            values = sorted(int(v) for v in np.unique(a[bad]))[:5]
            raise LabelValueError(
                f"{what}: label values {values} are not classes (0..{num_classes - 1}) "
                f"nor the ignore value {ignore_index}"
            )
    return a.astype(label_dtype(int(hi)), copy=False)


def check_same_grid(a: Volume, b: Volume, what: str = "label map") -> None:
    """Raise :class:`GeometryMismatchError` unless ``a`` and ``b`` share one voxel grid."""
    problems = []
    if a.shape != b.shape:
        problems.append(f"shape {b.shape} vs {a.shape}")
    for name in ("spacing", "origin", "direction"):
        va, vb = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = max(1.0, float(np.abs(va).max(initial=0)))
        if not np.allclose(va, vb, atol=_GEOMETRY_ATOL * scale, rtol=0):
            problems.append(f"{name} {tuple(np.round(vb, 4))} vs {tuple(np.round(va, 4))}")
    if problems:
        src = f" ({b.path})" if b.path else ""
        raise GeometryMismatchError(
            f"{what}{src} does not match its image grid: " + "; ".join(problems)
        )


def as_volume(obj: Volume | np.ndarray, spacing: Sequence[float] | None = None) -> Volume:
    """Wrap a bare array (z, y, x) as a Volume; pass a Volume through."""
    if isinstance(obj, Volume):
        return obj
    arr = np.asarray(obj)
    return Volume(arr, spacing=tuple(float(s) for s in (spacing or (1.0, 1.0, 1.0))))  # type: ignore[arg-type]
