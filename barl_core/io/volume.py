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
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from barl_core.errors import GeometryMismatchError, InputFileError, InvalidVolumeError
from barl_core.io.nifti_check import check_nifti

__all__ = [
    "Volume",
    "read_volume",
    "write_volume",
    "write_labels",
    "check_same_grid",
    "label_dtype",
    "all_finite",
    "is_supported_path",
    "strip_extension",
    "atomic_path",
    "remove_stale_temporaries",
    "SUPPORTED_EXTENSIONS",
    "MAX_VOXELS",
]

SUPPORTED_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Refuse headers that declare more voxels than this (2048^3); a hostile or corrupt
#: header must not make us try to allocate terabytes.
MAX_VOXELS = 2048**3
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
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    def with_array(self, array: np.ndarray) -> Volume:
        """Same geometry, other voxels (e.g. a label map or a prediction)."""
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
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing([float(s) for s in self.spacing[::-1]])
        img.SetOrigin([float(o) for o in self.origin])
        img.SetDirection([float(d) for d in self.direction])
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, path: Path | None = None) -> Volume:
        if image.GetDimension() != 3:
            raise InvalidVolumeError(
                f"{path or 'volume'}: expected a 3D volume, got {image.GetDimension()}D"
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
    """True for a supported file extension or a folder holding DICOM files."""
    p = Path(path)
    if p.is_dir():
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)))
    return p.name.lower().endswith(SUPPORTED_EXTENSIONS)


def _read_dicom_series(folder: Path, series_id: str | None) -> sitk.Image:
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise InputFileError(f"{folder}: no DICOM series found in this folder")
    if series_id is None:
        if len(ids) > 1:
            raise InputFileError(
                f"{folder}: holds {len(ids)} DICOM series ({', '.join(ids)}); "
                "pass series_id= to choose one"
            )
        series_id = ids[0]
    elif series_id not in ids:
        raise InputFileError(f"{folder}: no DICOM series {series_id!r}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


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
    try:
        if p.is_dir():
            image = _read_dicom_series(p, series_id)
        else:
            if not p.name.lower().endswith(SUPPORTED_EXTENSIONS):
                raise InputFileError(
                    f"{p}: unsupported file type (use one of {', '.join(SUPPORTED_EXTENSIONS)} "
                    "or a DICOM folder)"
                )
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(p))
            reader.ReadImageInformation()
            size = reader.GetSize()
            if int(np.prod(np.asarray(size, dtype=np.float64))) > MAX_VOXELS:
                raise InputFileError(f"{p}: header declares an absurd size {size}; refusing to read")
            image = reader.Execute()
    except InputFileError:
        raise
    except RuntimeError as exc:  # SimpleITK reports every IO failure as RuntimeError
        first = str(exc).strip().splitlines()
        detail = next((ln for ln in first if "rror" in ln), first[0] if first else "")
        raise InputFileError(f"{p}: cannot read this file (corrupt, truncated or not an image). {detail}".strip()) from None
    except (OSError, MemoryError) as exc:
        raise InputFileError(f"{p}: cannot read this file: {exc}") from None
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
    """True unless a float array holds NaN or Inf.

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


class atomic_path:
    """Context manager yielding a temporary path beside ``target``; renamed on success.

    A reader never sees a half-written file: on any error (or a kill) only the
    hidden temporary remains, and it never carries the final name.
    """

    def __init__(self, target: str | os.PathLike, suffix: str | None = None):
        self.target = Path(target)
        self.suffix = suffix if suffix is not None else _full_suffix(self.target.name)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            # the name is shortened so that a long (valid) target still gets a valid temporary
            prefix=f".{self.target.name[:80]}.", suffix=".tmp" + self.suffix, dir=self.target.parent
        )
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            _fsync(self.tmp)
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


def _full_suffix(name: str) -> str:
    low = name.lower()
    for ext in SUPPORTED_EXTENSIONS:
        if low.endswith(ext):
            return name[-len(ext):]
    return Path(name).suffix


def _fsync(path: Path) -> None:
    try:
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
    except OSError:
        pass


def write_volume(volume: Volume, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write a volume with its geometry; atomic (temporary file, then rename)."""
    p = Path(path)
    if not p.name.lower().endswith(SUPPORTED_EXTENSIONS):
        raise InputFileError(f"{p}: unsupported output type (use {', '.join(SUPPORTED_EXTENSIONS)})")
    if volume.array.ndim != 3:
        raise InvalidVolumeError(f"{p}: expected a 3D array, got {volume.array.ndim}D")
    image = volume.to_sitk()
    try:
        if p.name.lower().endswith(".mhd"):
            _write_mhd_atomic(image, p, compress)
        else:
            with atomic_path(p) as tmp:
                sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:
        raise InputFileError(f"{p}: cannot write: {str(exc).strip().splitlines()[-1]}") from None
    except OSError as exc:  # no permission, disk full, name too long, ...
        raise InputFileError(f"{p}: cannot write: {exc.strerror or exc}") from None
    return p


def _write_mhd_atomic(image: sitk.Image, p: Path, compress: bool) -> None:
    # The header names its data file, so write both under their final names in a
    # private folder, move the data first and the header (the "commit") last.
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{p.name}.", dir=p.parent) as tmpdir:
        tmp_header = Path(tmpdir) / p.name
        sitk.WriteImage(image, str(tmp_header), compress)
        for f in Path(tmpdir).iterdir():
            if f.name != p.name:
                os.replace(f, p.parent / f.name)
        os.replace(tmp_header, p)


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
    return write_volume(out, path, compress=compress)


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


#: Names :class:`atomic_path` (``mkstemp``) and the MHD writer (``TemporaryDirectory``) give
#: their temporaries: hidden, the target's name, 8 random characters, then ``.tmp...``.
_STALE_FILE_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp.*$")
_STALE_DIR_RE = re.compile(r"^\..+\.mhd\.[a-z0-9_]{8}$", re.IGNORECASE)


def remove_stale_temporaries(
    folder: str | os.PathLike, *, min_age_s: float = 60.0, recursive: bool = True
) -> list[Path]:
    """Delete temporaries that a killed write left behind; return what was removed.

    A write killed mid-way leaves only its hidden temporary (the final name still holds
    the last complete version), which loaders already skip; this reclaims the space.
    Only names of our own temporaries are touched, and only those older than
    ``min_age_s``, so a write in flight in another process (a prediction job) survives.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    now = time.time()
    removed: list[Path] = []
    entries = root.rglob(".*") if recursive else root.glob(".*")
    for path in sorted(entries, key=lambda q: len(q.parts), reverse=True):
        try:
            if now - path.lstat().st_mtime < min_age_s:
                continue
            if path.is_file() and not path.is_symlink() and _STALE_FILE_RE.match(path.name):
                path.unlink()
            elif path.is_dir() and not path.is_symlink() and _STALE_DIR_RE.match(path.name):
                shutil.rmtree(path)
            else:
                continue
        except OSError:  # vanished meanwhile, or not ours to delete
            continue
        removed.append(path)
    return removed
