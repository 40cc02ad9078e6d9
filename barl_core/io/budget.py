"""How many bytes a volume's header promises, checked before a single voxel is allocated.

Why this exists: an image header is a claim, not a fact. A 50 KB ``.nii.gz`` can declare
2000^3 voxels, and SimpleITK allocates the whole buffer before it notices the data is not
there (16 GB for that file). So before reading voxels we compare what the header declares
with two facts we can get cheaply:

- the file's own size: uncompressed NIfTI must hold every byte it declares, and deflate
  (gzip, zlib in NRRD/MHA) never expands more than about 1032:1, so a compressed file
  declaring more than ``1032 x size`` bytes is truncated or hostile;
- the memory this machine has available: reading needs the buffer twice (ITK's and the
  numpy copy), and a read that cannot fit is refused instead of being killed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from barl_core.errors import InputFileError

__all__ = ["declared_bytes", "check_byte_budget", "available_memory", "MAX_DEFLATE_RATIO"]

#: Deflate's worst-case expansion is 1032:1 (a run of one byte); a little slack on top.
MAX_DEFLATE_RATIO = 1040
#: Header bytes we allow on top of the data (NIfTI extensions, NRRD/MHA text headers).
_HEADER_SLACK = 1 << 16
#: Formats whose header and data share one file (the size check applies).
_SINGLE_FILE = (".nii.gz", ".nii", ".nrrd", ".mha")


def _pixel_bytes(pixel_id_text: str, components: int) -> int:
    """Bytes per voxel from SimpleITK's pixel description ("32-bit float", "complex of ...")."""
    bits = re.findall(r"(\d+)-bit", pixel_id_text)
    per = int(bits[0]) // 8 if bits else 8
    if "complex" in pixel_id_text.lower():
        per *= 2
    return per * max(int(components), 1)


def declared_bytes(size: tuple[int, ...], pixel_id_text: str, components: int) -> int:
    """Bytes of voxel data a header declares (Python ints: no overflow on hostile sizes)."""
    n = 1
    for s in size:
        n *= max(int(s), 0)
    return n * _pixel_bytes(pixel_id_text, components)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``, else psutil), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # pragma: no cover - non-Linux
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    try:  # pragma: no cover - neither /proc nor psutil
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_byte_budget(path: Path, size: tuple[int, ...], pixel_id_text: str, components: int) -> int:
    """Refuse a header whose declared data cannot be in the file or cannot fit in memory.

    Returns the declared data size in bytes.

    Raises
    ------
    InputFileError
        The file is far too small for what its header declares (truncated or hostile), or
        reading it would need more memory than is available.
    """
    need = declared_bytes(size, pixel_id_text, components)
    name = path.name.lower()
    if path.is_file() and name.endswith(_SINGLE_FILE):
        have = path.stat().st_size
        compressed = name.endswith(".gz") or not name.endswith(".nii")
        limit = have * MAX_DEFLATE_RATIO + _HEADER_SLACK if compressed else have
        if need > limit:
            raise InputFileError(
                f"{path}: header declares {tuple(int(s) for s in size)} voxels ({_human(need)}) "
                f"but the file holds only {_human(have)}: truncated or not a valid image; "
                "refusing to read"
            )
    avail = available_memory()
    if avail is not None and 2 * need > avail:
        raise InputFileError(
            f"{path}: reading {tuple(int(s) for s in size)} voxels needs about {_human(2 * need)} "
            f"of memory, {_human(avail)} is available; refusing to read"
        )
    return need
