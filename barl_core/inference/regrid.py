"""Map outputs from the working grid back onto the input's grid, a z-slab at a time.

Predicting at a working resolution (the plan's target spacing) makes a 512^3 CBCT at 0.3 mm a
256^3 problem at 0.6 mm; the class map and the disagreement must then come back onto the
input's exact grid. Resampling a whole map in one call costs a float32 copy of the *input*
grid in SimpleITK plus another when numpy takes it over (2x the input's float32 size for the
float16 disagreement alone), which is what broke the memory budget. Every output voxel is
interpolated on its own from the source, so resampling slab by slab into a preallocated array
gives the same values with temporaries of one slab.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from barl_core.io.volume import Volume

__all__ = ["to_input_grid"]

#: Input voxels per resampling call (float32 temporaries of ~4 bytes each, twice).
_SLAB_VOXELS = 1 << 22


def to_input_grid(array: np.ndarray, working: dict, reference: Volume, *, is_label: bool,
                  default_value: float = 0.0) -> np.ndarray:
    """``array`` on the ``working`` grid, resampled onto ``reference``'s grid.

    Parameters
    ----------
    array : numpy.ndarray
        ``(z, y, x)`` on the working grid; its dtype is kept (float16 goes through float32,
        which SimpleITK needs, only on the small working grid and on one slab at a time).
    working : dict
        The working grid's ``spacing``, ``origin``, ``direction`` (``Volume.geometry()``).
    reference : Volume
        The input's grid (only the geometry is used).
    is_label : bool
        Nearest neighbour (class maps) rather than linear (disagreement, probabilities).
    default_value : float
        Value outside the working extent.

    Returns
    -------
    numpy.ndarray
        ``reference.shape``, ``array.dtype``.
    """
    dtype = array.dtype
    work = array if is_label or dtype in (np.float32, np.float64) else array.astype(np.float32)
    src = Volume.from_geometry(np.ascontiguousarray(work), {k: working[k] for k in ("spacing", "origin", "direction")})
    image = src.to_sitk()
    del work, src
    out = np.empty(reference.shape, dtype=dtype)
    z, y, x = reference.shape
    step = max(1, _SLAB_VOXELS // max(1, y * x))
    d = np.asarray(reference.direction, dtype=float).reshape(3, 3)
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing([float(s) for s in reference.spacing[::-1]])
    f.SetOutputDirection([float(v) for v in reference.direction])
    f.SetTransform(sitk.Transform())
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear)
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(image.GetPixelID())
    for a in range(0, z, step):
        b = min(z, a + step)
        origin = np.asarray(reference.origin, dtype=float) + d[:, 2] * (a * float(reference.spacing[0]))
        f.SetSize([x, y, b - a])
        f.SetOutputOrigin([float(o) for o in origin])
        slab = f.Execute(image)  # held while numpy reads its buffer through the view
        out[a:b] = sitk.GetArrayViewFromImage(slab)
        del slab
    return out
