"""Remove the network's stride-2 checkerboard from a disagreement map: :func:`antialias`.

Why
---
The U-Net down-samples with stride-2 convolutions and up-samples with stride-2 transposed
convolutions. Each output voxel's parity (even or odd index along an axis, counted from the
window's corner) goes through different kernel weights, so each branch's softmax carries a
small 2-voxel-period ripple, and the two branches carry *different* ripples. Their
Jensen-Shannon divergence turns that into a checkerboard over the whole map (on the phantom,
the period-2 component of the disagreement is about twice its spectral neighbours along y
and x). It says nothing about the anatomy; it makes the heat map look like the window grid.

Gaussian blending cannot remove it (every window sees the same parity lattice), so the
map is low-passed with the separable binomial kernel ``[1, 2, 1] / 4`` along z, y and x
(edges replicated): its response is exactly 0 at the 2-voxel period and 1 at the mean, so the
checkerboard goes, the map's mean (the case's disagreement score) stays, and a structure is
blurred by about 0.7 voxel. The class map and the probabilities are not touched.

Memory: in place, float32 temporaries of a few slices.
"""

from __future__ import annotations

import numpy as np

__all__ = ["antialias", "antialias_slab"]


def _binomial(a: np.ndarray, axis: int) -> np.ndarray:
    """``[1, 2, 1] / 4`` along ``axis`` of 2D float32 ``a``, edges replicated (views, no pad)."""
    n = a.shape[axis]
    if n < 2:
        return a
    v = np.moveaxis(a, axis, 0)
    out = np.empty_like(v)
    out[1:-1] = v[:-2] + v[2:]
    out[0] = v[0] + v[1]
    out[-1] = v[-2] + v[-1]
    out += 2.0 * v  # an edge voxel, replicated, counts three times: (3 v0 + v1) / 4
    out *= 0.25
    return np.moveaxis(out, 0, axis)


def antialias_slab(
    dis: np.ndarray, below: np.ndarray | None = None, above: np.ndarray | None = None
) -> np.ndarray:
    """Binomial low-pass of ``dis`` ``(z, y, x)``, in place; returns ``dis``.

    One slice at a time, so the temporaries are a few float32 slices.

    Parameters
    ----------
    dis : numpy.ndarray
        Float disagreement slices, changed in place.
    below, above : numpy.ndarray, optional
        The raw ``(y, x)`` slice just below the first / above the last slice of ``dis``
        when ``dis`` is a slab of a larger map (so a slab gets what the whole map gets on
        its slices); None where ``dis`` reaches the map's edge (the edge is replicated).
    """
    z = dis.shape[0]
    if z == 0:
        return dis
    prev = np.array(dis[0] if below is None else below, np.float32)  # raw slice k - 1
    cur = np.array(dis[0], np.float32)
    for k in range(z):
        if k + 1 < z:
            nxt = np.array(dis[k + 1], np.float32)
        else:
            nxt = np.array(dis[k] if above is None else above, np.float32)
        s = prev + nxt
        s += 2.0 * cur
        s *= 0.25
        dis[k] = _binomial(_binomial(s, 0), 1)
        prev, cur = cur, nxt
    return dis


def antialias(dis: np.ndarray) -> np.ndarray:
    """Binomial low-pass of a whole disagreement map ``(z, y, x)``, in place; returns it."""
    return antialias_slab(dis)
