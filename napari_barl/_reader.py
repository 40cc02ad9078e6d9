"""napari reader: NIfTI, NRRD, MHA/MHD files and DICOM series folders.

Label maps open as Labels layers, volumes as Image layers, both placed in
physical space with the source geometry kept in the layer metadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from barl_core.io.volume import Volume, is_supported_path, read_volume, strip_extension

from ._layers import geometry_kwargs

__all__ = ["napari_get_reader", "read_layers", "looks_like_labels"]

_LABEL_WORDS = ("label", "seg", "mask")
_MAX_LABEL_VALUES = 64


def napari_get_reader(path: str | os.PathLike | list) -> Callable | None:
    """Return :func:`read_layers` if we can read ``path``, else None (npe2 contract)."""
    if isinstance(path, list | tuple):
        if not path or not all(_supported(p) for p in path):
            return None
        return read_layers
    return read_layers if _supported(path) else None


def _supported(path) -> bool:
    try:
        return is_supported_path(path)
    except (OSError, RuntimeError):
        return False


def looks_like_labels(volume: Volume, path: Path) -> bool:
    """Heuristic: an MSD ``labelsTr/`` file, a name saying so, or few integer values."""
    name = strip_extension(path.name).lower()
    if path.parent.name == "labelsTr" or any(w in name for w in _LABEL_WORDS):
        return np.issubdtype(volume.array.dtype, np.integer)
    if not np.issubdtype(volume.array.dtype, np.integer):
        return False
    if volume.array.dtype.itemsize > 2 or volume.array.min() < 0:
        return False
    sample = volume.array[:: max(1, volume.shape[0] // 16)]
    return (
        len(np.unique(sample)) <= _MAX_LABEL_VALUES
        and len(np.unique(volume.array)) <= _MAX_LABEL_VALUES
    )


def read_layers(path: str | os.PathLike | list) -> list[tuple]:
    """Read one or several volumes as napari layer data tuples.

    Raises
    ------
    barl_core.errors.BarlError
        Unreadable, corrupt or unsupported input (napari shows the message).
    """
    paths = path if isinstance(path, list | tuple) else [path]
    return [_read_one(Path(p)) for p in paths]


def _read_one(path: Path) -> tuple:
    vol = read_volume(path)
    name = strip_extension(path.name.rstrip("/")) or path.name
    kwargs = geometry_kwargs(vol)
    kwargs["name"] = name
    if looks_like_labels(vol, path):
        data = vol.array
        if data.dtype.kind == "i":
            data = data.astype(np.uint16 if data.max() > 255 else np.uint8)
        return (data, kwargs, "labels")
    return (vol.array, kwargs, "image")
