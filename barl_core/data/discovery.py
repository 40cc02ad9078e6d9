"""Finding volume files in a folder: the one scanner every command uses.

Why one: the dataset loader, ``barl predict`` on a folder, ``barl evaluate`` and the
workspace each listed folders with their own rules (one skipped hidden files, another
did not; one refused names that are paths on Windows, the others let them through). Now
they all see the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from barl_core.data.case_names import case_name_from_file, validate_case_name
from barl_core.errors import InputFileError
from barl_core.io.volume import SUPPORTED_EXTENSIONS

__all__ = ["volume_files", "is_volume_name"]


def is_volume_name(name: str) -> bool:
    """Return True for a file name with a supported volume extension (``.nii.gz``, ``.nrrd``...)."""
    return name.lower().endswith(SUPPORTED_EXTENSIONS)


def volume_files(folder: str | os.PathLike) -> list[Path]:
    """Return the volume files directly in ``folder``, sorted by name.

    Hidden files (our own atomic temporaries, macOS ``._x``) and sub-folders are skipped.
    A name that is a path elsewhere (a Windows separator) or holds control characters is
    refused before anything else, even when it would count as hidden: it must not be
    silently ignored, nor ever become an output name.

    Raises
    ------
    InputFileError
        ``folder`` cannot be listed, or a file name is unsafe (the case-name rule).
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise InputFileError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    files = []
    for entry in entries:
        name = entry.name
        if not is_volume_name(name):
            continue
        stem = case_name_from_file(name)
        if "\\" in stem or any(ord(c) < 32 or ord(c) == 127 for c in stem):
            validate_case_name(stem)
        if name.startswith(".") or not entry.is_file():
            continue
        files.append(Path(entry.path))
    return files
