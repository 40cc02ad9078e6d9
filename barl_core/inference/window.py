"""Gaussian-blended sliding-window prediction of both branches in a z-ring buffer.

A trained model segments a whole CBCT (hundreds of voxels a side) one window at a time.
Windows overlap (default 0.5) and are blended with a Gaussian importance map, so the seams
between windows vanish. Both branches run on every window; each branch's *finest* softmax is
accumulated separately, because the product is not only the class map (argmax of the two
branches' mean softmax) but also the per-voxel **disagreement** between the branches (the
Jensen-Shannon divergence of their softmax, divided by ``log 2`` so it lies in ``[0, 1]``),
which is what tells a radiologist where to annotate next.

Memory
------
A 512^3 volume must not need many float32 copies of itself per class. Windows are processed
row by row along z, and the Gaussian-weighted sums live in a *ring buffer* only one window deep
in z (``n_branches x C x window_z x Y x X`` float32). As soon as no later window can touch a
z-slice, that slice is finalised: its class (uint8) and disagreement (float16) are written to
the output arrays and its ring slot is reused. The peak is therefore about::

    input (its own dtype) + labels (0.25x) + disagreement (0.5x)
    + ring buffer ((n_branches * C + 1) * window_z / Z x) [+ probabilities, C * 0.5x, on request]

in units of the volume's float32 size (windows are normalised one at a time, so there is
no normalised copy of the volume). On top comes a fixed cost that does not grow with the
volume: the network's activations for one window batch and finalisation temporaries of at
most 16 MiB each; :mod:`barl_core.inference.memory` adds it all up.
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

from barl_core.data.dataset import NormStats, normalize
from barl_core.errors import CancelledError, InvalidVolumeError
from barl_core.inference.model import LoadedModel

__all__ = [
    "SlidingWindowResult",
    "WindowProgress",
    "sliding_window",
    "gaussian_importance",
    "window_starts",
    "js_disagreement",
    "normalized_entropy",
    "is_cancelled",
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


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Evenly spread window starts covering ``[0, size)`` with at least ``overlap``."""
    if size <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    n = math.ceil((size - window) / step) + 1
    return sorted({int(round(i * (size - window) / (n - 1))) for i in range(n)})


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



def is_cancelled(cancel: Any) -> bool:
    """True once ``cancel`` (a CancelToken, an Event, a callable or None) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "cancelled"):
        return bool(cancel.cancelled)
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    if callable(cancel):
        return bool(cancel())
    return False


def _zeros(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """float32 zeros; on the CPU allocated by numpy, so memory profilers (tracemalloc) see it."""
    if device.type == "cpu":
        return torch.from_numpy(np.zeros(shape, dtype=np.float32))
    return torch.zeros(shape, dtype=torch.float32, device=device)


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


def _effective_window(shape: Sequence[int], window: Sequence[int], divisor: int) -> tuple[int, ...]:
    """The window, shrunk (to a multiple of ``divisor``) along axes where the volume is smaller."""
    out = []
    for n, w in zip(shape, window, strict=True):
        w = int(w)
        if w % divisor:
            w = int(math.ceil(w / divisor) * divisor)
        if n < w:
            w = int(math.ceil(n / divisor) * divisor)
        out.append(max(w, divisor))
    return tuple(out)


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

    Returns
    -------
    SlidingWindowResult
        ``labels`` uint8 argmax of the branches' mean softmax, ``disagreement`` float16 in
        ``[0, 1]`` (Jensen-Shannon / log 2 for two branches; normalised entropy for one).
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.size == 0:
        raise InvalidVolumeError(f"expected a non-empty 3D array (z, y, x), got shape {arr.shape}")
    if not 0.0 <= overlap < 1.0:
        raise InvalidVolumeError(f"overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise InvalidVolumeError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    shape = arr.shape
    win = _effective_window(shape, window or model.patch_size, model.divisor)
    padded = tuple(max(n, w) for n, w in zip(shape, win, strict=True))
    before = tuple((p - n) // 2 for p, n in zip(padded, shape, strict=True))
    starts = [window_starts(p, w, overlap) for p, w in zip(padded, win, strict=True)]
    rows = [[(z, y, x) for y in starts[1] for x in starts[2]] for z in starts[0]]
    total = sum(len(r) for r in rows)

    dev = model.device
    nb, c = model.n_branches, model.num_classes
    wz, (_, py, px) = win[0], padded
    ring = _zeros((nb, c, wz, py, px), dev)
    wsum = _zeros((wz, py, px), dev)
    gauss = torch.from_numpy(gaussian_importance(win)).to(dev)

    labels = np.empty(shape, dtype=np.uint8)
    disagreement = np.empty(shape, dtype=np.float16)
    probs = np.empty((c, *shape), dtype=np.float16) if return_probabilities else None
    entropy = np.empty(shape, dtype=np.float16) if return_entropy else None
    amp = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if dev.type == "cuda"
        else contextlib.nullcontext()
    )

    chunk = int(np.clip(_FINALISE_BYTES // max(1, nb * c * shape[1] * shape[2] * 4), 1, 8))

    def finalise(z_lo: int, z_hi: int) -> None:
        """Turn ring slots of padded z in [z_lo, z_hi) into outputs; free the slots."""
        for off, phys in _ring_parts(z_lo, z_hi - z_lo, wz):
            zs = z_lo + off.start
            ze = z_lo + off.stop
            # crop to the real volume; a few slices at a time bounds the temporaries
            lo, hi = max(zs, before[0]), min(ze, before[0] + shape[0])
            for a in range(lo, hi, chunk):
                b = min(a + chunk, hi)
                ps = slice(phys.start + (a - zs), phys.start + (b - zs))
                ys = slice(before[1], before[1] + shape[1])
                xs = slice(before[2], before[2] + shape[2])
                p = ring[:, :, ps, ys, xs] / wsum[ps, ys, xs].clamp_min(1e-8)
                mean = p.mean(0)
                dst = slice(a - before[0], b - before[0])
                labels[dst] = mean.argmax(0).to(torch.uint8).cpu().numpy()
                dis = js_disagreement(p[0], p[1]) if nb == 2 else normalized_entropy(p[0])
                disagreement[dst] = dis.to(torch.float16).cpu().numpy()
                if probs is not None:
                    probs[:, dst] = mean.to(torch.float16).cpu().numpy()
                if entropy is not None:
                    entropy[dst] = normalized_entropy(mean).to(torch.float16).cpu().numpy()
            ring[:, :, phys] = 0
            wsum[phys] = 0

    def tile(z: int, y: int, x: int) -> np.ndarray:
        """Window at padded corner (z, y, x), edge-padded where it leaves the volume."""
        src, pad = [], []
        for s, w, b, n in zip((z, y, x), win, before, shape, strict=True):
            lo, hi = s - b, s - b + w
            src.append(slice(max(lo, 0), min(hi, n)))
            pad.append((max(0, -lo), max(0, hi - n)))
        t = arr[tuple(src)]
        if any(p != (0, 0) for p in pad):
            t = np.pad(t, pad, mode="edge")
        return normalize(t, norm) if norm is not None else t

    done = 0
    z_done = 0  # padded z below this is final
    with torch.inference_mode():
        for z0, row in zip(starts[0], rows, strict=True):
            if z0 > z_done:
                finalise(z_done, z0)
                z_done = z0
            for i in range(0, len(row), sw_batch_size):
                if is_cancelled(cancel):
                    raise CancelledError("prediction cancelled")
                batch = row[i : i + sw_batch_size]
                x = torch.from_numpy(
                    np.stack([tile(*corner) for corner in batch]).astype(np.float32, copy=False)
                )[:, None].to(dev)
                with amp:
                    outs = model.branch_logits(x)
                for j, (_, y0, x0) in enumerate(batch):
                    ys, xs = slice(y0, y0 + win[1]), slice(x0, x0 + win[2])
                    for bi, logits in enumerate(outs):
                        p = F.softmax(logits[j].float(), dim=0) * gauss
                        for off, phys in _ring_parts(z0, wz, wz):
                            ring[bi, :, phys, ys, xs] += p[:, off]
                    for off, phys in _ring_parts(z0, wz, wz):
                        wsum[phys, ys, xs] += gauss[off]
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        finalise(z_done, padded[0])
    return SlidingWindowResult(labels, disagreement, probs, entropy)


