"""napari writer: Labels layers to NIfTI / NRRD on their source grid."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from barl_core.io.volume import write_labels

from ._layers import volume_from_layer_attributes

__all__ = ["write_labels_layer"]


def write_labels_layer(path: str | os.PathLike, data: Any, attributes: dict) -> list[str]:
    """Write one Labels layer as unsigned integers with the source geometry.

    The geometry recorded by the reader (``metadata["barl_geometry"]``) is restored
    exactly, so a mask drawn in napari lands voxel-for-voxel on the source scan in
    any other tool.
    """
    arr = np.asarray(data[0] if isinstance(data, list) else data)
    ref = volume_from_layer_attributes(arr, attributes)
    out = write_labels(arr, ref, path)
    return [str(out)]
