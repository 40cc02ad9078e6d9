"""Drive the app the way a user does, from tests and scripts (no Qt of its own).

Why: the GUI tests and ``scripts/screenshots.py`` both paint labels and must do it the way
napari's brush does (data change plus a ``paint`` event with its undo atom), or the dock's
autosave and annotation bookkeeping never hear of the strokes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["paint_slice"]


def paint_slice(layer, z: int, values: np.ndarray) -> None:
    """Put the non-zero ``values`` on axial slice ``z`` of a Labels ``layer``, as a brush stroke.

    Parameters
    ----------
    layer : napari.layers.Labels
        The layer to paint into.
    z : int
        Axial slice index.
    values : numpy.ndarray
        2D label values for the slice; zeros are left unpainted.
    """
    idx = np.nonzero(values)
    full = (np.full(idx[0].shape, z), *idx)
    old = layer.data[full].copy()
    layer.data[full] = values[idx]
    layer.refresh()
    layer.events.paint(value=[(full, old, values[idx])])
