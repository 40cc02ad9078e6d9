"""The SimpleITK side of volume files: open an image safely, verify a written one.

:mod:`~barl_core.io.volume` is the API (``Volume``, ``read_volume``, ``write_volume``); this
is what it needs from ITK around it, kept apart because each step exists for a failure ITK
hides: a header is checked (absurd sizes, complex pixels, the memory budget) before any voxel
is allocated, a DICOM folder must name one series, a written file is read back before it
replaces anything, and an MHD header (which names its data file) is committed last.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from barl_core.errors import InputFileError, InvalidVolumeError, OutputFileError
from barl_core.io.atomic import describe_os_error
from barl_core.io.budget import check_byte_budget
from barl_core.io.nifti_check import check_nifti

__all__ = ["SUPPORTED_EXTENSIONS", "MAX_VOXELS", "read_image", "verify_written", "write_mhd_atomic"]

SUPPORTED_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Refuse headers that declare more voxels than this (2048^3); a hostile or corrupt
#: header must not make us try to allocate terabytes.
MAX_VOXELS = 2048**3


def read_image(p: Path, series_id: str | None) -> sitk.Image:
    """Open ``p`` (a volume file or a DICOM series folder) as an ITK image, header checked first."""
    if p.is_dir():
        return _read_dicom_series(p, series_id)
    if not p.name.lower().endswith(SUPPORTED_EXTENSIONS):
        raise InputFileError(
            f"{p}: unsupported file type (use one of {', '.join(SUPPORTED_EXTENSIONS)} or a DICOM folder)"
        )
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    reader.ReadImageInformation()
    _check_header(p, reader)
    return reader.Execute()


def _check_header(p: Path, reader: sitk.ImageFileReader) -> None:
    """Refuse what cannot be a usable volume before any voxel is allocated."""
    size = reader.GetSize()
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if int(np.prod(np.asarray(size, dtype=np.float64))) > MAX_VOXELS:
        raise InputFileError(f"{p}: header declares an absurd size {size}; refusing to read")
    if "complex" in pixel.lower():
        raise InvalidVolumeError(f"{p}: complex-valued voxels ({pixel}) are not supported; "
                                 "save the magnitude as a real-valued volume")
    check_byte_budget(p, size, pixel, reader.GetNumberOfComponents())


def _read_dicom_series(folder: Path, series_id: str | None) -> sitk.Image:
    """Read the one (or the named) DICOM series of ``folder``, its byte budget checked first."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise InputFileError(f"{folder}: no DICOM series found in this folder")
    if series_id is None:
        if len(ids) > 1:
            raise InputFileError(
                f"{folder}: holds {len(ids)} DICOM series ({', '.join(ids)}); "
                "choose one with --series-id ID (series_id= from Python)"
            )
        series_id = ids[0]
    elif series_id not in ids:
        raise InputFileError(
            f"{folder}: no DICOM series {series_id!r} (found: {', '.join(ids)})"
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    # the byte budget of the whole stack, from one slice's header (DICOM slices share a grid)
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    plane = tuple(first.GetSize()[:2])
    pixel = sitk.GetPixelIDValueAsString(first.GetPixelID())
    check_byte_budget(folder, (*plane, len(files)), pixel, first.GetNumberOfComponents())
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def verify_written(tmp: Path, image: sitk.Image, expected: np.ndarray | None) -> None:
    """Raise unless ``tmp`` reads back with ``image``'s grid (and ``expected``'s voxels).

    NIfTI data is checked for completeness by streaming (:func:`check_nifti`); other
    formats are read back whole (ITK's readers fail on truncated NRRD/MHA data).
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(tmp))
    reader.ReadImageInformation()
    if tuple(reader.GetSize()) != tuple(image.GetSize()) or reader.GetPixelID() != image.GetPixelID():
        raise OutputFileError(
            f"{tmp.name}: reads back as {reader.GetSize()} "
            f"{sitk.GetPixelIDValueAsString(reader.GetPixelID())}, "
            f"not {image.GetSize()} {image.GetPixelIDTypeAsString()}"
        )
    nifti = tmp.name.lower().endswith((".nii", ".nii.gz"))
    if nifti:
        found = check_nifti(tmp, check_finite=False)
        if found.problem:
            raise OutputFileError(found.problem)
    if expected is not None or not nifti:
        read_back = reader.Execute()  # kept alive: the view below borrows its buffer
        back = sitk.GetArrayViewFromImage(read_back)
        if expected is not None and not np.array_equal(back, expected):
            raise OutputFileError("the voxels read back differ from those written")


def write_mhd_atomic(image: sitk.Image, p: Path, compress: bool, verify) -> None:
    """Write an MHD header and its data file atomically, verified with ``verify``."""
    # The header names its data file, so write both under their final names in a
    # private folder, verify them there, move the data first and the header (the
    # "commit") last.
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{p.name}.", dir=p.parent) as tmpdir:
        tmp_header = Path(tmpdir) / p.name
        sitk.WriteImage(image, str(tmp_header), compress)
        try:
            verify(tmp_header)
        except (RuntimeError, OSError, ValueError) as exc:
            raise OutputFileError(
                f"{p}: the written file does not read back as written ({describe_os_error(exc)}; "
                "disk full?); the previous file is unchanged"
            ) from None
        for f in Path(tmpdir).iterdir():
            if f.name != p.name:
                os.replace(f, p.parent / f.name)
        os.replace(tmp_header, p)
