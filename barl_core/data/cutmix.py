"""Cut-mix of a batch of patches, and its exact inverse for the outputs.

The strong view of a two-branch method can be made stronger by pasting a box of the next
patch of the batch into each patch (CutMix, as cross pseudo supervision's paper uses it).
The cross-branch terms compare the two branches voxel by voxel, so the strong branch's
outputs are *un-mixed* before any loss: with the same box for every sample and a roll of the
batch by one, mixing is a permutation of voxels between samples, and its inverse puts every
prediction back over the voxel it was made for. The strong branch must then predict each
voxel of a patch from a context that partly belongs to another patch, which is the point.

Everything is a ``torch.where`` on a box mask, so gradients flow through the un-mixing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BoxMix", "sample_box_mix"]


@dataclass(frozen=True)
class BoxMix:
    """One box shared by every sample of a batch; sample ``i`` receives sample ``i + 1``'s box.

    Parameters
    ----------
    lo, hi : tuple of float
        The box's corners as fractions of the patch along (z, y, x): fractions, not voxels,
        so the same box applies to the outputs at every resolution (the features are pooled).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def mask(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        """Boolean ``[1, 1, Z, Y, X]`` mask of the box on a grid of spatial ``shape``."""
        m = torch.zeros((1, 1, *shape), dtype=torch.bool, device=device)
        idx = tuple(slice(round(lo * n), round(hi * n)) for lo, hi, n in zip(self.lo, self.hi, shape, strict=True))
        m[(slice(None), slice(None), *idx)] = True
        return m

    def _apply(self, x: Tensor, shift: int) -> Tensor:
        if x.shape[0] < 2:
            return x
        box = self.mask(tuple(x.shape[2:]), x.device)
        return torch.where(box, torch.roll(x, shifts=shift, dims=0), x)

    def mix(self, x: Tensor) -> Tensor:
        """``[B, C, Z, Y, X]``: the box of sample ``i`` replaced by sample ``(i + 1) % B``'s."""
        return self._apply(x, -1)

    def unmix(self, x: Tensor) -> Tensor:
        """Invert :meth:`mix` (on any tensor over the same patches, at any resolution)."""
        return self._apply(x, 1)


def sample_box_mix(generator: torch.Generator, side: tuple[float, float] = (0.4, 0.8)) -> BoxMix:
    """Draw a box whose side along each axis is a fraction U(``side``) of the patch, placed uniformly.

    The default sides (40-80% per axis) cover 6-51% of the patch, about a fifth on average:
    a large part of the patch changes context, while most of it stays itself.
    """
    u = torch.rand(6, generator=generator).tolist()
    lo, hi = [], []
    for axis in range(3):
        length = side[0] + (side[1] - side[0]) * u[axis]
        start = (1.0 - length) * u[3 + axis]
        lo.append(start)
        hi.append(start + length)
    return BoxMix(tuple(lo), tuple(hi))
