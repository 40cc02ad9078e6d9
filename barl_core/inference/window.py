"""Gaussian-blended sliding-window prediction of both branches in a z-ring buffer.

A trained model segments a whole CBCT (hundreds of voxels a side) one window at a time.
Windows overlap (default 0.5) and are blended with a Gaussian importance map, so the seams
between windows vanish; every window starts at a multiple of the network's divisor (the
volume is padded to allow it, by the rule training patches are padded with:
:func:`~barl_core.data.padding.pad_image`, edge values), so the lattice its stride-2 layers leave lines up across
windows instead of changing phase at each seam. Both branches run on every window; each branch's *finest* softmax is
accumulated separately, because the product is not only the class map (argmax of the two
branches' mean softmax) but also the per-voxel **disagreement** between the branches (the
Jensen-Shannon divergence of their softmax, divided by ``log 2`` so it lies in ``[0, 1]``),
which is what tells a radiologist where to annotate next. The disagreement is computed from
the *blended* probabilities (so window seams blend away as in the class map), then the
network's own 2-voxel checkerboard is filtered out of it (:mod:`barl_core.inference.antialias`).

Memory
------
A 512^3 volume must not need many float32 copies of itself per class. Windows are processed
row by row along z, and the Gaussian-weighted softmax sums live in a *ring buffer* only one
window deep in z. It is float16 (the sums stay below the number of windows covering a voxel,
where float16 keeps ~3 decimal digits, as many as the float16 outputs) and it holds classes
1..C-1 of each branch only: each branch's sums over all classes equal the Gaussian weight
sum, which is rebuilt from the window grid when slices are finalised, so class 0 and the
weight sum cost nothing. As soon as no later window can touch a z-slice, it is finalised: its
class (uint8) and disagreement (float16) are written to the output arrays and its ring slot
is reused. The peak is therefore about::

    input (its own dtype) + labels (0.25x) + disagreement (0.5x)
    + ring buffer (n_branches * (C - 1) * window_z / Z / 2 x) [+ probabilities, C * 0.5x]

in units of the volume's float32 size (windows are normalised one at a time, so there is
no normalised copy of the volume). On top comes a fixed cost that does not grow with the
volume: the network's activations for one window batch and finalisation temporaries of a
few slices; :mod:`barl_core.inference.memory` adds it all up.

Speed
-----
The network dominates (87% of the time in bfloat16, 98% in float32 on a CPU, measured by
``benchmarks/speed.py``), so the lever is its arithmetic: ``precision="auto"`` runs it under
bfloat16 autocast on CPUs that have native bfloat16 and float16 on CUDA (see
:func:`~barl_core.inference.model.autocast_dtype`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from barl_core.data.normalization import NormStats, normalize
from barl_core.data.padding import pad_image
from barl_core.errors import CancelledError, InvalidVolumeError
from barl_core.inference.antialias import antialias_slab
from barl_core.inference.model import LoadedModel, autocast_dtype
from barl_core.runtime.cancel import is_cancelled

__all__ = [
    "SlidingWindowResult",
    "WindowProgress",
    "sliding_window",
    "gaussian_importance",
    "window_starts",
    "js_disagreement",
    "normalized_entropy",
]

_EPS = 1e-7
#: Bytes of float32 temporaries allowed per finalisation step (1 to 8 z-slices at a time).
_FINALISE_BYTES = 1 << 24

#: ``progress(done, total)``: windows done out of the volume's total.
WindowProgress = Callable[[int, int], None]


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weights over a window (max 1), so window centres count more than edges.

    ``sigma = sigma_scale * side`` per axis (nnU-Net's 1/8); the smallest weight is kept
    strictly positive so that every voxel of a window contributes.
    """
    axes = []
    for n in window:
        c = (n - 1) / 2.0
        s = max(sigma_scale * n, 1e-3)
        axes.append(np.exp(-0.5 * ((np.arange(n) - c) / s) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g = (g / g.max()).astype(np.float32)
    positive = g[g > 0]
    g[g <= 0] = positive.min() if positive.size else 1.0
    return np.maximum(g, np.float32(1e-4))


def window_starts(size: int, window: int, overlap: float, divisor: int = 1) -> list[int]:
    """Evenly spread window starts covering ``[0, size)`` with at least ``overlap``.

    With ``divisor`` > 1 every start is a multiple of it (``size - window`` must be one): a
    U-Net's stride-2 layers leave a lattice of period ``divisor`` in its output, counted from
    the window's corner, so windows at different phases would each bring their own lattice
    and the blend would show the window grid; at one phase they all line up.
    """
    if size <= window:
        return [0]
    if (size - window) % divisor:
        raise ValueError(f"size - window ({size - window}) is not a multiple of {divisor}")
    units = (size - window) // divisor  # the span in multiples of the divisor
    step = max(1, int(window * (1.0 - overlap)) // divisor)
    n = math.ceil(units / step) + 1
    return sorted({divisor * int(round(i * units / (n - 1))) for i in range(n)})


def js_disagreement(pa: torch.Tensor, pb: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Jensen-Shannon divergence of two softmax maps over ``dim``, divided by ``log 2``.

    0 where the branches agree exactly, 1 where they are certain of different classes.
    """
    m = 0.5 * (pa + pb)
    log_m = torch.log(m.clamp_min(_EPS))
    kl_a = (pa * (torch.log(pa.clamp_min(_EPS)) - log_m)).sum(dim)
    kl_b = (pb * (torch.log(pb.clamp_min(_EPS)) - log_m)).sum(dim)
    return (0.5 * (kl_a + kl_b) / math.log(2.0)).clamp_(0.0, 1.0)


def normalized_entropy(p: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Shannon entropy over ``dim`` divided by ``log C``: 0 certain, 1 uniform."""
    c = p.shape[dim]
    h = -(p * torch.log(p.clamp_min(_EPS))).sum(dim)
    return (h / math.log(c)).clamp_(0.0, 1.0) if c > 1 else torch.zeros_like(h)



def _zeros(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Zeros; on the CPU allocated by numpy, so memory profilers (tracemalloc) see them."""
    if device.type == "cpu":
        np_dtype = {torch.float16: np.float16, torch.float32: np.float32}[dtype]
        return torch.from_numpy(np.zeros(shape, dtype=np_dtype))
    return torch.zeros(shape, dtype=dtype, device=device)


def _ring_parts(start: int, length: int, depth: int) -> Iterator[tuple[slice, slice]]:
    """Split logical z range ``[start, start+length)`` into (logical offset, ring slot) slices."""
    done = 0
    while done < length:
        phys = (start + done) % depth
        n = min(length - done, depth - phys)
        yield slice(done, done + n), slice(phys, phys + n)
        done += n


# --------------------------------------------------------------------------- sliding window
@dataclass
class SlidingWindowResult:
    """Outputs of :func:`sliding_window` on the grid of the array it was given."""

    labels: np.ndarray
    disagreement: np.ndarray
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None
    slice_features: np.ndarray | None = None


def _effective_window(shape: Sequence[int], window: Sequence[int], divisor: int) -> tuple[int, ...]:
    """Shrink the window (to a multiple of ``divisor``) along axes where the volume is smaller."""
    out = []
    for n, w in zip(shape, window, strict=True):
        w = int(w)
        if w % divisor:
            w = int(math.ceil(w / divisor) * divisor)
        if n < w:
            w = int(math.ceil(n / divisor) * divisor)
        out.append(max(w, divisor))
    if all(w == divisor for w in out):  # a 1x1x1 bottleneck: instance norm needs 2 voxels
        out[0] = 2 * divisor
    return tuple(out)


class _Grid:
    """Where the windows go on the padded volume, and the Gaussian weight each voxel gets.

    The weight sum is never stored: every window row along z has the same ``(y, x)`` corners,
    so the sum over the windows covering a few z-slices is rebuilt from the Gaussian when those
    slices are finalised. That saves a volume-wide float32 buffer one window deep.
    """

    def __init__(self, shape: Sequence[int], win: Sequence[int], overlap: float, device: torch.device,
                 divisor: int = 1):
        self.shape, self.win = tuple(shape), tuple(win)
        # padded so that every window starts at a multiple of the network's divisor
        self.padded = tuple(w + divisor * math.ceil(max(0, n - w) / divisor)
                            for n, w in zip(shape, win, strict=True))
        self.before = tuple((p - n) // 2 for p, n in zip(self.padded, shape, strict=True))
        starts = [window_starts(p, w, overlap, divisor) for p, w in zip(self.padded, win, strict=True)]
        self.z_starts = starts[0]
        self.corners_yx = [(y, x) for y in starts[1] for x in starts[2]]
        self.gauss = torch.from_numpy(gaussian_importance(win)).to(device)

    def weight_sum(self, a: int, b: int) -> torch.Tensor:
        """Sum the Gaussian weight of padded z-slices ``[a, b)``, cropped to the real (y, x)."""
        (wz, wy, wx), (_, py, px) = self.win, self.padded
        w = torch.zeros((b - a, py, px), dtype=torch.float32, device=self.gauss.device)
        for z0 in self.z_starts:
            lo, hi = max(a, z0), min(b, z0 + wz)
            if lo >= hi:
                continue
            g = self.gauss[lo - z0 : hi - z0]
            for y0, x0 in self.corners_yx:
                w[lo - a : hi - a, y0 : y0 + wy, x0 : x0 + wx] += g
        by, bx = self.before[1:]
        return w[:, by : by + self.shape[1], bx : bx + self.shape[2]]


def sliding_window(
    model: LoadedModel,
    image: np.ndarray,
    *,
    window: Sequence[int] | None = None,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    return_probabilities: bool = False,
    return_entropy: bool = False,
    progress: WindowProgress | None = None,
    cancel: Any = None,
    norm: NormStats | None = None,
    precision: str = "auto",
    z_range: tuple[int, int] | None = None,
    return_features: bool = False,
) -> SlidingWindowResult:
    """Gaussian-blended sliding-window prediction of a ``(z, y, x)`` array.

    Parameters
    ----------
    model : LoadedModel
    image : numpy.ndarray
        ``(z, y, x)`` of any size and numeric dtype, already normalised unless ``norm`` is
        given; smaller than the window or not divisible is fine (edge padding, cropped away
        afterwards).
    window : sequence of 3 int, optional
        Window ``(z, y, x)``; default the checkpoint's patch size.
    overlap : float
        Fraction of the window shared by neighbouring windows, in ``[0, 1)``.
    sw_batch_size : int
        Windows per forward pass.
    return_probabilities : bool
        Also return the branches' mean softmax, float16 ``[C, z, y, x]``.
    return_entropy : bool
        Also return the normalised entropy of the mean softmax, float16.
    progress : callable, optional
        ``progress(windows_done, windows_total)``.
    cancel : CancelToken, Event or callable, optional
        Checked between window batches; raises :class:`CancelledError`.
    norm : NormStats, optional
        Normalise each window on the fly with these statistics, so that no normalised
        float32 copy of the whole volume is ever made.
    precision : str
        Arithmetic of the network: ``"auto"`` (float16 autocast on CUDA, bfloat16 on CPUs
        with native bfloat16, float32 otherwise), ``"float32"``, ``"bfloat16"``, ``"float16"``
        (see :func:`~barl_core.inference.model.autocast_dtype`). Blending is float32 math on
        float16 sums in every case.
    z_range : (int, int), optional
        Only the slices ``[lo, hi)``: only the rows of windows touching them run, and the
        outputs hold ``hi - lo`` slices equal to those of the whole-array pass (same windows,
        same weights).
    return_features : bool
        Also return ``slice_features``, float32 ``[n_slices, n_branches * base_channels]``: per
        z-slice, each branch's last decoder map (what its finest head classifies) averaged over
        the slice, Gaussian-weighted over the windows that cover it. Pooled inside the forward
        that already runs (no second pass); active learning compares slices with it.

    Returns
    -------
    SlidingWindowResult
        ``labels`` uint8 argmax of the branches' mean softmax, ``disagreement`` float16 in
        ``[0, 1]`` (Jensen-Shannon / log 2 for two branches; normalised entropy for one),
        low-passed by :func:`~barl_core.inference.antialias.antialias` (the network's
        stride-2 checkerboard removed; probabilities, entropy and labels are not).
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.size == 0:
        raise InvalidVolumeError(f"expected a non-empty 3D array (z, y, x), got shape {arr.shape}")
    if not 0.0 <= overlap < 1.0:
        raise InvalidVolumeError(f"overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise InvalidVolumeError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    shape = arr.shape
    dev = model.device
    win = _effective_window(shape, window or model.patch_size, model.divisor)
    grid = _Grid(shape, win, overlap, dev, model.divisor)
    padded, before, gauss = grid.padded, grid.before, grid.gauss
    lo, hi = (0, shape[0]) if z_range is None else (int(z_range[0]), int(z_range[1]))
    if not 0 <= lo < hi <= shape[0]:
        raise InvalidVolumeError(f"z_range {z_range} is not within the array's {shape[0]} slices")
    # one more slice each side of a slab: the anti-aliasing of the disagreement reads them,
    # so that a slab gets exactly what the whole-array pass gets on its slices
    want = (lo, hi)
    lo, hi = max(0, lo - 1), min(shape[0], hi + 1)
    out_lo, out_hi = lo + grid.before[0], hi + grid.before[0]  # in padded coordinates
    rows = [z0 for z0 in grid.z_starts if z0 < out_hi and z0 + win[0] > out_lo]
    total = len(rows) * len(grid.corners_yx)
    out_shape = (hi - lo, shape[1], shape[2])

    nb, c = model.n_branches, model.num_classes
    wz, (_, py, px) = win[0], padded
    # Gaussian-weighted softmax sums of classes 1..C-1 per branch, float16 (see module doc);
    # class 0 is the weight sum minus the others
    ring = _zeros((nb, c - 1, wz, py, px), dev, torch.float16)

    labels = np.empty(out_shape, dtype=np.uint8)
    disagreement = np.empty(out_shape, dtype=np.float16)
    probs = np.empty((c, *out_shape), dtype=np.float16) if return_probabilities else None
    entropy = np.empty(out_shape, dtype=np.float16) if return_entropy else None
    low = autocast_dtype(precision, dev)
    amp = torch.autocast(device_type=dev.type, dtype=low) if low is not None else contextlib.nullcontext()

    pool = _SlicePool(padded[0], grid, shape, nb) if return_features else None
    chunk = int(np.clip(_FINALISE_BYTES // max(1, (nb + 2) * c * shape[1] * shape[2] * 4), 1, 8))

    def finalise(z_lo: int, z_hi: int) -> None:
        """Turn ring slots of padded z in [z_lo, z_hi) into outputs; free the slots."""
        ys = slice(before[1], before[1] + shape[1])
        xs = slice(before[2], before[2] + shape[2])
        # crop to the real volume; a few slices at a time bounds the temporaries
        for a in range(max(z_lo, out_lo), min(z_hi, out_hi), chunk):
            b = min(a + chunk, z_hi, out_hi)
            rest = torch.cat([ring[:, :, phys, ys, xs] for _, phys in _ring_parts(a, b - a, wz)], 2)
            rest = rest.float().div_(grid.weight_sum(a, b))
            p = torch.cat([(1.0 - rest.sum(1, keepdim=True)).clamp_(0.0, 1.0), rest.clamp_(0.0, 1.0)], 1)
            mean = p.mean(0)
            dst = slice(a - out_lo, b - out_lo)
            labels[dst] = mean.argmax(0).to(torch.uint8).cpu().numpy()
            dis = js_disagreement(p[0], p[1]) if nb == 2 else normalized_entropy(p[0])
            disagreement[dst] = dis.to(torch.float16).cpu().numpy()
            if probs is not None:
                probs[:, dst] = mean.to(torch.float16).cpu().numpy()
            if entropy is not None:
                entropy[dst] = normalized_entropy(mean).to(torch.float16).cpu().numpy()
        for _, phys in _ring_parts(z_lo, z_hi - z_lo, wz):
            ring[:, :, phys] = 0

    def tile(z: int, y: int, x: int) -> np.ndarray:
        """Window at padded corner (z, y, x), padded as training pads where it leaves the volume."""
        src, pad = [], []
        for s, w, b, n in zip((z, y, x), win, before, shape, strict=True):
            lo, hi = s - b, s - b + w
            src.append(slice(max(lo, 0), min(hi, n)))
            pad.append((max(0, -lo), max(0, hi - n)))
        t = arr[tuple(src)]
        t = pad_image(t, pad)  # the training sampler's rule (edge values); no copy if none
        return normalize(t, norm) if norm is not None else t

    done = 0
    z_done = rows[0]  # padded z below this is final
    with torch.inference_mode():
        for z0 in rows:
            if z0 > z_done:
                finalise(z_done, z0)
                z_done = z0
            row = [(z0, y0, x0) for y0, x0 in grid.corners_yx]
            for i in range(0, len(row), sw_batch_size):
                if is_cancelled(cancel):
                    raise CancelledError("prediction cancelled")
                batch = row[i : i + sw_batch_size]
                x = torch.from_numpy(
                    np.stack([tile(*corner) for corner in batch]).astype(np.float32, copy=False)
                )[:, None].to(dev)
                with amp:
                    if pool is None:
                        outs = model.branch_logits(x)
                    else:
                        pairs = model.branch_logits_and_decoder(x)
                        outs = tuple(logits for logits, _ in pairs)
                        pool.add(batch, [h for _, h in pairs])
                for bi, logits in enumerate(outs):
                    p = F.softmax(logits.float(), dim=1)[:, 1:].mul_(gauss)
                    for j, (_, y0, x0) in enumerate(batch):
                        ys, xs = slice(y0, y0 + win[1]), slice(x0, x0 + win[2])
                        for off, phys in _ring_parts(z0, wz, wz):
                            ring[bi, :, phys, ys, xs] += p[j, :, off]
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        finalise(z_done, padded[0])
    a, b = want[0] - lo, want[1] - lo
    antialias_slab(disagreement[a:b], disagreement[a - 1] if a > 0 else None,
                   disagreement[b] if b < disagreement.shape[0] else None)
    feats = pool.result(want[0] + before[0], want[1] + before[0]) if pool is not None else None
    if (a, b) == (0, disagreement.shape[0]):
        return SlidingWindowResult(labels, disagreement, probs, entropy, feats)
    return SlidingWindowResult(
        labels[a:b].copy(), disagreement[a:b].copy(),
        probs[:, a:b].copy() if probs is not None else None,
        entropy[a:b].copy() if entropy is not None else None,
        feats,
    )


class _SlicePool:
    """Accumulate per padded z-slice sums of each branch's decoder map.

    The sums are Gaussian-weighted over the real (unpadded) voxels of every window that covers
    the slice: a few floats per slice.
    """

    def __init__(self, depth: int, grid: _Grid, shape: Sequence[int], n_branches: int):
        self.grid, self.shape, self.nb = grid, tuple(shape), n_branches
        self.sums: np.ndarray | None = None  # [depth, nb * F], sized at the first window
        self.weights = np.zeros(depth, dtype=np.float64)
        self.depth = depth

    def _real(self, start: int, axis: int) -> slice:
        """Return the part of a window starting at padded ``start`` that lies inside the volume."""
        before, n, w = self.grid.before[axis], self.shape[axis], self.grid.win[axis]
        return slice(max(0, before - start), max(0, min(w, before + n - start)))

    def add(self, batch: Sequence[tuple[int, int, int]], maps: Sequence[torch.Tensor]) -> None:
        """Accumulate one batch of windows; ``maps[b]`` is branch b's ``[B, F, wz, wy, wx]``."""
        n_feat = int(maps[0].shape[1])
        if self.sums is None:
            self.sums = np.zeros((self.depth, self.nb * n_feat), dtype=np.float64)
        wz = self.grid.win[0]
        for j, (z0, y0, x0) in enumerate(batch):
            ys, xs = self._real(y0, 1), self._real(x0, 2)
            g = self.grid.gauss[:, ys, xs]
            self.weights[z0 : z0 + wz] += g.sum((1, 2)).double().cpu().numpy()
            for b, h in enumerate(maps):
                s = (h[j][:, :, ys, xs].float() * g).sum((2, 3))  # [F, wz]
                self.sums[z0 : z0 + wz, b * n_feat : (b + 1) * n_feat] += s.T.double().cpu().numpy()

    def result(self, lo: int, hi: int) -> np.ndarray:
        """Weighted means of padded slices ``[lo, hi)``, float32 ``[hi - lo, nb * F]``."""
        sums = self.sums if self.sums is not None else np.zeros((self.depth, 0))
        return (sums[lo:hi] / np.maximum(self.weights[lo:hi, None], 1e-12)).astype(np.float32)
