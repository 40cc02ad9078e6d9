"""Checks on NIfTI files that SimpleITK's reader does not make.

Why this exists: ITK's bundled NIfTI library (up to ITK 5.4) silently replaces every
NaN/Inf voxel with 0 on read, and reads a truncated ``.nii.gz`` without an error
(the missing voxels come back as zeros). Both would let a broken volume into
training unnoticed, so :func:`barl_core.io.volume.read_volume` asks this module to look at
the file's own bytes: its header (NIfTI-1 or NIfTI-2), whether the data is complete,
and, for float data, whether any value is non-finite.

The scan streams the file in chunks (bounded memory). Integer data in a gzip file is
usually checked from the gzip trailer alone (the uncompressed size it records must
equal header + data), so only float volumes pay for a second decompression.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["NiftiCheck", "check_nifti"]

_CHUNK = 1 << 24  # bytes per read while streaming
_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of real floats


class NiftiCheck:
    """Result of :func:`check_nifti`: ``problem`` is None for a sound file."""

    def __init__(self, problem: str | None = None, nonfinite: int = 0):
        self.problem = problem
        self.nonfinite = nonfinite


def _header(raw: bytes) -> tuple[str, int, int, int] | None:
    """(byte order, datatype, data bytes, data offset) or None if not NIfTI-1/2."""
    for order in ("<", ">"):
        (size,) = struct.unpack(order + "i", raw[:4])
        if size == 348 and len(raw) >= 348:
            dims = struct.unpack(order + "8h", raw[40:56])
            datatype, bitpix = struct.unpack(order + "2h", raw[70:74])
            (vox_offset,) = struct.unpack(order + "f", raw[108:112])
            vox_offset = max(int(vox_offset), 352)
            break
        if size == 540 and len(raw) >= 540:
            datatype, bitpix = struct.unpack(order + "2h", raw[12:16])
            dims = struct.unpack(order + "8q", raw[16:80])
            (vox_offset,) = struct.unpack(order + "q", raw[168:176])
            vox_offset = max(int(vox_offset), 544)
            break
    else:
        return None
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    n = 1
    for d in dims[1 : ndim + 1]:
        n *= max(int(d), 1)
    return order, int(datatype), n * int(bitpix) // 8, int(vox_offset)


def _gzip_trailer_size(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, 2)
            return struct.unpack("<I", fh.read(4))[0]
    except OSError:
        return None


def check_nifti(path: Path, *, check_finite: bool) -> NiftiCheck:
    """Look for truncation and (with ``check_finite``) NaN/Inf in a NIfTI file."""
    compressed = path.name.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(540)
            info = _header(head)
            if info is None:
                return NiftiCheck()  # not our business: SimpleITK already judged the header
            order, datatype, nbytes, vox_offset = info
            expected = vox_offset + nbytes
            float_code = _FLOAT_TYPES.get(datatype) if check_finite else None
            if float_code is None:
                if not compressed:
                    if path.stat().st_size < expected:
                        return NiftiCheck(f"truncated: {path.stat().st_size} of {expected} bytes")
                    return NiftiCheck()
                if _gzip_trailer_size(path) == expected % (1 << 32):
                    return NiftiCheck()
            # stream the data: counts bytes (truncation) and non-finite floats
            fh.seek(vox_offset)
            dtype = np.dtype(order + float_code) if float_code else None
            remaining, bad, carry = nbytes, 0, b""
            while remaining > 0:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    return NiftiCheck(f"truncated: {nbytes - remaining} of {nbytes} data bytes")
                remaining -= len(chunk)
                if dtype is not None:
                    chunk = carry + chunk
                    usable = len(chunk) - len(chunk) % dtype.itemsize
                    values = np.frombuffer(chunk[:usable], dtype=dtype)
                    bad += int(values.size - np.count_nonzero(np.isfinite(values)))
                    carry = chunk[usable:]
            if compressed:
                while fh.read(_CHUNK):  # reach the end-of-stream marker (or fail)
                    pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return NiftiCheck(f"corrupt or truncated compressed data ({exc})")
    except OSError as exc:
        return NiftiCheck(f"cannot read: {exc}")
    return NiftiCheck(None, bad)
