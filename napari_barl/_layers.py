"""Glue between :class:`barl_core.io.volume.Volume` geometry and napari layer keywords.

napari places a layer in world space with ``scale``/``translate`` (axis-aligned
grids) or a full ``affine`` (oblique grids). We keep the exact ITK geometry in
``metadata["barl_geometry"]`` so that the writer and the export restore it bit for
bit, whatever napari did with the transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from barl_core.io.volume import Volume

__all__ = [
    "GEOMETRY_KEY",
    "SOURCE_KEY",
    "geometry_kwargs",
    "volume_from_layer_attributes",
    "is_axis_aligned",
]

GEOMETRY_KEY = "barl_geometry"
SOURCE_KEY = "barl_source"


def is_axis_aligned(volume: Volume) -> bool:
    """True when the direction matrix is the identity (scale/translate suffice)."""
    return bool(
        np.allclose(np.asarray(volume.direction, float).reshape(3, 3), np.eye(3), atol=1e-6)
    )


def geometry_kwargs(volume: Volume, extra_metadata: dict | None = None) -> dict:
    """Layer keywords placing ``volume`` in world space, with its geometry in metadata.

    World coordinates are physical ``(z, y, x)`` in mm (ITK LPS, reversed), so that
    images of one patient overlay where they belong.
    """
    meta = {GEOMETRY_KEY: volume.geometry()}
    if volume.path is not None:
        meta[SOURCE_KEY] = str(volume.path)
    meta.update(extra_metadata or {})
    if is_axis_aligned(volume):
        return {
            "scale": tuple(float(s) for s in volume.spacing),
            "translate": tuple(float(o) for o in volume.origin[::-1]),
            "metadata": meta,
        }
    return {"affine": volume.affine_zyx(), "metadata": meta}


def volume_from_layer_attributes(data: np.ndarray, attributes: dict) -> Volume:
    """Rebuild the Volume (array + geometry) of a layer from its attributes.

    The recorded geometry wins; without it, ``scale`` and ``translate`` (and an
    axis-aligned direction) are the best we know.
    """
    arr = np.asarray(data)
    meta = attributes.get("metadata") or {}
    geom = meta.get(GEOMETRY_KEY)
    source = meta.get(SOURCE_KEY)
    path = Path(source) if source else None
    if geom is not None and tuple(geom.get("shape", arr.shape)) == arr.shape:
        return Volume.from_geometry(arr, geom, path=path)
    scale = attributes.get("scale")
    translate = attributes.get("translate")
    spacing = tuple(float(s) for s in (scale if scale is not None else (1.0,) * 3))[-3:]
    origin_zyx = tuple(float(t) for t in (translate if translate is not None else (0.0,) * 3))[-3:]
    return Volume(arr, spacing=spacing, origin=origin_zyx[::-1], path=path)  # type: ignore[arg-type]
