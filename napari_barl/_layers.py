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
    "CASE_KEY",
    "GEOMETRY_KEY",
    "SOURCE_KEY",
    "geometry_kwargs",
    "volume_from_layer_attributes",
    "is_axis_aligned",
    "same_layer",
    "single_colour_labels",
    "class_colormap",
    "UNITS",
]

#: Layer metadata naming the workspace case a layer shows (compared by name: docked
#: through npe2, layers come through a proxy and identity fails).
CASE_KEY = "barl_case"
GEOMETRY_KEY = "barl_geometry"
SOURCE_KEY = "barl_source"
#: World units of every layer we place: the scale bar and cursor readout then say mm.
UNITS = ("mm", "mm", "mm")


def same_layer(a, b) -> bool:
    """Return True when ``a`` and ``b`` are the same layer, also through napari's plugin proxy.

    A widget docked through npe2 gets a public-only proxy of the viewer, and every
    access returns a fresh proxy object, so ``a is b`` is always False there.
    """
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def is_axis_aligned(volume: Volume) -> bool:
    """Return True when the direction matrix is the identity (scale/translate suffice)."""
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
            "units": UNITS,
        }
    return {"affine": volume.affine_zyx(), "metadata": meta, "units": UNITS}


def class_colormap(num_classes: int):
    """Return the label colours of a case: the audit tables' colours.

    So napari, ITK-SNAP and 3D Slicer show each class alike; scribbled background is grey.

    Colours are given for a few classes beyond ``num_classes`` so that a class added
    while painting has its colour at once.
    """
    from napari.utils.colormaps import DirectLabelColormap

    from barl_core.workspace.audit import class_colors

    from ._annotation import SCRIBBLE_BACKGROUND

    n = max(int(num_classes), 2) + 8
    colours = {
        k: tuple(c / 255.0 for c in rgb) + (1.0,) for k, rgb in enumerate(class_colors(n)) if k
    }
    colours.update({None: (1.0, 1.0, 1.0, 1.0), 0: (0.0, 0.0, 0.0, 0.0)})
    colours[SCRIBBLE_BACKGROUND] = (0.55, 0.55, 0.55, 1.0)
    return DirectLabelColormap(color_dict=colours)


def single_colour_labels(colour: str):
    """Return a label colormap drawing every label in one ``colour`` (0 transparent)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: colour, 0: "transparent"})


def data_to_world_matrix(attributes: dict, ndim: int = 3) -> np.ndarray:
    """Return the 4x4 ``(z, y, x)`` index -> world matrix of a layer, from its attributes.

    napari places a layer with ``affine`` applied after its own scale, rotate, shear and
    translate; a layer made by napari's "New Labels" on an oblique scan carries only the
    ``affine``, one on an axis-aligned scan only ``scale``/``translate``. Both count.
    """
    from napari.utils.transforms import Affine, CompositeAffine

    def _get(key, default):
        value = attributes.get(key)
        return default if value is None else value

    inner = CompositeAffine(
        scale=np.asarray(_get("scale", (1.0,) * ndim), float)[-ndim:],
        translate=np.asarray(_get("translate", (0.0,) * ndim), float)[-ndim:],
        rotate=_get("rotate", None),
        shear=_get("shear", None),
        ndim=ndim,
    )
    outer_raw = attributes.get("affine")
    if outer_raw is None:
        return inner.affine_matrix
    outer = (
        outer_raw
        if isinstance(outer_raw, Affine)
        else Affine(affine_matrix=np.asarray(outer_raw, float))
    )
    m = np.asarray(outer.affine_matrix, float)
    m = m[-(ndim + 1) :, -(ndim + 1) :]
    return m @ inner.affine_matrix


def volume_from_layer_attributes(data: np.ndarray, attributes: dict) -> Volume:
    """Rebuild the Volume (array + geometry) of a layer from its attributes.

    The recorded geometry wins; without it the layer's own placement in world space
    (``affine`` composed with ``scale``/``translate``/``rotate``/``shear``) is read as
    physical ``(z, y, x)`` mm, which is how :func:`geometry_kwargs` places volumes.
    """
    arr = np.asarray(data)
    meta = attributes.get("metadata") or {}
    geom = meta.get(GEOMETRY_KEY)
    source = meta.get(SOURCE_KEY)
    path = Path(source) if source else None
    if geom is not None and tuple(geom.get("shape", arr.shape)) == arr.shape:
        return Volume.from_geometry(arr, geom, path=path)
    m = data_to_world_matrix(attributes, 3)
    linear = m[:3, :3]
    spacing_zyx = np.linalg.norm(linear, axis=0)
    if np.any(spacing_zyx <= 0):
        raise ValueError(f"layer transform is degenerate: {linear.tolist()}")
    flip = np.eye(3)[::-1]
    direction_xyz = flip @ (linear / spacing_zyx) @ flip
    return Volume(
        arr,
        spacing=tuple(float(s) for s in spacing_zyx),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in m[:3, 3][::-1]),  # type: ignore[arg-type]
        direction=tuple(float(d) for d in direction_xyz.ravel()),
        path=path,
    )
