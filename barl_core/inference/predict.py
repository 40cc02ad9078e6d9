"""Sliding-window prediction of both BARL branches, with a disagreement map, in bounded memory.

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
no normalised copy of the volume; with a working spacing, the resampled image and the maps on
the working grid come on top). For a 512^3 volume, 3 classes, two branches and a 96^3 window
that is about 1x + 0.75x + 1.3x = 3.1x (1.6 GiB). On top comes a fixed cost that does not
grow with the volume: the network's activations for one window batch (~110 MiB for base
width 8 and a 64^3 window, ~290 MiB for 96^3), the float64 sample of at most 2M voxels the
per-volume normalisation statistics are computed on (< 100 MiB, freed before the windows
run) and finalisation temporaries of at most 16 MiB each. :func:`estimate_memory` adds it
all up, and :func:`predict_volume` refuses early with :class:`InsufficientMemoryError` when
the machine does not have it.

Example
-------
>>> model = load_model("run/model.pt")                         # doctest: +SKIP
>>> pred = predict_volume(model, read_volume("case.nii.gz"))   # doctest: +SKIP
>>> pred.labels.dtype, pred.disagreement.dtype                 # doctest: +SKIP
(dtype('uint8'), dtype('float16'))
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from barl_core.data.dataset import NormalizationConfig, NormStats, compute_norm_stats, normalize
from barl_core.data.resample import needs_resampling, resample_to_reference, resample_volume
from barl_core.errors import BarlError, CancelledError, InputFileError, InvalidVolumeError
from barl_core.io.volume import (
    Volume,
    all_finite,
    read_volume,
    strip_extension,
    write_labels,
    write_volume,
)
from barl_core.networks.unet import required_divisor
from barl_core.training.checkpoint import build_model, load_checkpoint

__all__ = [
    "LoadedModel",
    "Prediction",
    "SlidingWindowResult",
    "PredictedFile",
    "InsufficientMemoryError",
    "load_model",
    "sliding_window",
    "predict_volume",
    "predict_files",
    "gaussian_importance",
    "window_starts",
    "estimate_memory",
    "prediction_memory",
    "available_memory",
    "js_disagreement",
    "normalized_entropy",
    "DISAGREEMENT_SUFFIX",
]

#: File name suffix of disagreement maps written by :func:`predict_files`.
DISAGREEMENT_SUFFIX = "_disagreement"
#: Fraction of the available memory a prediction may plan to use.
_MEMORY_HEADROOM = 0.9
_EPS = 1e-7
#: Bytes of float32 temporaries allowed per finalisation step (1 to 8 z-slices at a time).
_FINALISE_BYTES = 1 << 24

#: ``progress(done, total)``: windows done out of the volume's total.
WindowProgress = Callable[[int, int], None]


class InsufficientMemoryError(BarlError):
    """The prediction would need more memory than the machine has available."""


# --------------------------------------------------------------------------- the model
@dataclass
class LoadedModel:
    """A network in eval mode on its device, with what predict needs from its checkpoint.

    Attributes
    ----------
    module : torch.nn.Module
        ``UNet3D`` (1 branch) or ``BiBranchNet`` (2 branches), eval mode, on ``device``.
    device : torch.device
    metadata : dict
        The checkpoint without its weights and optimiser state (method, class names,
        normalisation, working spacing, patch size, iteration, config, history).
    path : Path or None
        Where it was loaded from.
    """

    module: nn.Module
    device: torch.device
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        patch_size: Sequence[int],
        class_names: Sequence[str] | None = None,
        target_spacing: Sequence[float] | None = None,
        normalization: NormStats | None = None,
        device: str | torch.device = "cpu",
    ) -> LoadedModel:
        """Wrap an in-memory ``UNet3D``/``BiBranchNet`` (no checkpoint file), e.g. in tests."""
        from dataclasses import asdict

        from barl_core.networks.unet import UNet3D

        cfg = module.cfg  # type: ignore[attr-defined]
        names = list(class_names) if class_names else ["background"] + [
            f"class_{i}" for i in range(1, cfg.num_classes)
        ]
        meta = {
            "n_branches": 1 if isinstance(module, UNet3D) else 2,
            "network": asdict(cfg),
            "class_names": names,
            "patch_size": [int(s) for s in patch_size],
            "target_spacing": [float(s) for s in target_spacing] if target_spacing else None,
            "normalization": normalization.to_dict() if normalization else None,
            "norm_config": asdict(NormalizationConfig()),
        }
        dev = torch.device(device)
        return cls(module=module.to(dev).eval(), device=dev, metadata=meta)

    @property
    def n_branches(self) -> int:
        return int(self.metadata.get("n_branches", 2))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.metadata.get("class_names", ()))

    @property
    def num_classes(self) -> int:
        return int(self.metadata["network"]["num_classes"])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The training patch, also the default inference window."""
        return tuple(int(s) for s in self.metadata.get("patch_size", (32, 64, 64)))  # type: ignore[return-value]

    @property
    def target_spacing(self) -> tuple[float, float, float] | None:
        sp = self.metadata.get("target_spacing")
        return tuple(float(s) for s in sp) if sp else None  # type: ignore[return-value]

    @property
    def base_channels(self) -> int:
        """Width of the first level (activations, hence memory, grow with it)."""
        return int(getattr(self.module.cfg, "base_channels", 16))

    @property
    def divisor(self) -> int:
        """Every window side must be a multiple of this."""
        return required_divisor(self.module.cfg)  # type: ignore[arg-type]

    def norm_stats_for(self, array: np.ndarray) -> NormStats:
        """Fixed statistics from training, or the volume's own (what training did)."""
        fixed = self.metadata.get("normalization")
        if fixed:
            return NormStats.from_dict(fixed)
        cfg = self.metadata.get("norm_config")
        return compute_norm_stats(array, NormalizationConfig(**cfg) if cfg else None)

    @torch.no_grad()
    def branch_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Finest logits of each branch, ``[B, C, *x.shape[2:]]``."""
        out = self.module.forward_logits(x)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> LoadedModel:
    """Load a checkpoint for prediction (never executes code from the file).

    Parameters
    ----------
    path : path
        A ``model.pt`` or periodic checkpoint.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda[:N]"``, ``"mps"``.

    Raises
    ------
    CheckpointError
        Unreadable, unsafe, other-format or inconsistent checkpoint.
    TrainingError
        The device is not available.
    """
    from barl_core.training.trainer import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    ckpt = load_checkpoint(path, map_location="cpu")
    module = build_model(ckpt).to(dev).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model_state", "optimizer_state", "scaler_state", "rng_state")}
    return LoadedModel(module=module, device=dev, metadata=meta, path=Path(path))


# --------------------------------------------------------------------------- pieces
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


def available_memory() -> int | None:
    """Bytes of RAM available to a new allocation (psutil, else /proc/meminfo), or None."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


#: Bytes per window voxel of one forward pass of both branches: ~256 that do not grow with the
#: width (input, heads, softmax, oneDNN scratch) plus ~32 per base channel (the skip
#: connections and the block being computed). Measured on the CPU with VmHWM for base 8-32,
#: windows 64^3-96^3 (114-290 MiB); this rounds every measurement up.
_ACT_BYTES_FIXED = 256
_ACT_BYTES_PER_CHANNEL = 32


def estimate_memory(
    shape: Sequence[int],
    num_classes: int,
    *,
    n_branches: int = 2,
    window: Sequence[int] = (32, 64, 64),
    return_probabilities: bool = False,
    input_itemsize: int = 4,
    working_shape: Sequence[int] | None = None,
    sw_batch_size: int = 1,
    base_channels: int = 16,
) -> int:
    """Peak host bytes :func:`predict_volume` adds to a process that holds the model and the
    input volume (an upper estimate; the input is counted too).

    Counts the input, the ring buffer of Gaussian-weighted softmax sums, the uint8 class map
    and float16 disagreement (on the working grid and, when resampled, again on the input
    grid), optional float16 probabilities, the network's activations for one window batch,
    the normalisation-statistics sample and the finalisation temporaries. The first four grow
    with the volume; the rest is a fixed cost (~100-300 MiB) that dominates small volumes.
    """
    from barl_core.data.dataset import _STATS_MAX_SAMPLES

    n_in = int(np.prod([int(s) for s in shape], dtype=np.float64))
    work = [int(s) for s in (working_shape or shape)]
    n_work = int(np.prod(work, dtype=np.float64))
    wz = min(int(window[0]), work[0])
    plane = max(work[1], int(window[1])) * max(work[2], int(window[2]))
    ring = (n_branches * num_classes + 1) * wz * plane * 4
    per_out = 1 + 2 + (2 * num_classes if return_probabilities else 0)
    total = n_in * input_itemsize + ring + n_work * per_out
    if working_shape is not None and tuple(work) != tuple(int(s) for s in shape):
        # resampled float32 image; outputs again on the input grid (plus a float32 temporary)
        total += n_work * 4 + n_in * (per_out + 4)
    # sliding_window shrinks the window to the volume along short axes
    win = int(np.prod([min(int(w), n) for w, n in zip(window, work, strict=True)], dtype=np.float64))
    per_voxel = _ACT_BYTES_FIXED + _ACT_BYTES_PER_CHANNEL * int(base_channels)
    total += sw_batch_size * win * (per_voxel + 4 * (1 + 3 * n_branches * num_classes))
    total += min(n_work, _STATS_MAX_SAMPLES) * 8 * 6  # float64 sample, percentile/clip/std copies
    total += 4 * _FINALISE_BYTES
    return int(total)


def prediction_memory(
    model: LoadedModel,
    volume: Volume,
    *,
    window: Sequence[int] | None = None,
    sw_batch_size: int = 1,
    return_probabilities: bool = False,
) -> int:
    """:func:`estimate_memory` for :func:`predict_volume` of ``volume`` with ``model`` (its
    classes, branches, width, default window and working spacing), the figure the early
    refusal compares with the available memory."""
    work_shape = None
    if needs_resampling(volume, model.target_spacing):
        from barl_core.data.resample import resampled_shape

        work_shape = resampled_shape(volume.shape, volume.spacing, model.target_spacing)  # type: ignore[arg-type]
    return estimate_memory(
        volume.shape, model.num_classes, n_branches=model.n_branches,
        window=window or model.patch_size, return_probabilities=return_probabilities,
        input_itemsize=np.asarray(volume.array).dtype.itemsize, working_shape=work_shape,
        sw_batch_size=sw_batch_size, base_channels=model.base_channels,
    )


def _is_cancelled(cancel: Any) -> bool:
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
                if _is_cancelled(cancel):
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


# --------------------------------------------------------------------------- whole volumes
@dataclass
class Prediction:
    """A prediction on the input volume's exact grid.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 class map ``(z, y, x)``.
    disagreement : numpy.ndarray
        float16 in ``[0, 1]``: Jensen-Shannon divergence between the branches' softmax / log 2
        (normalised entropy for one-branch models).
    probabilities : numpy.ndarray or None
        float16 ``[C, z, y, x]`` mean softmax of the branches, on request.
    entropy : numpy.ndarray or None
        float16 normalised entropy of the mean softmax, on request.
    class_names : tuple of str
    """

    labels: np.ndarray
    disagreement: np.ndarray
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None
    class_names: tuple[str, ...] = ()


def _check_volume(volume: Volume) -> np.ndarray:
    arr = np.asarray(volume.array)
    if arr.ndim != 3 or arr.size == 0:
        raise InvalidVolumeError(f"expected a non-empty 3D volume, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise InvalidVolumeError(f"cannot predict a volume of dtype {arr.dtype}")
    if not all_finite(arr):
        raise InvalidVolumeError("the volume holds NaN/Inf voxels; clean it before predicting")
    return arr


def predict_volume(
    model: LoadedModel,
    volume: Volume,
    *,
    return_probabilities: bool = False,
    return_entropy: bool = False,
    progress: WindowProgress | None = None,
    cancel: Any = None,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    window: Sequence[int] | None = None,
    check_memory: bool = True,
) -> Prediction:
    """Segment ``volume`` and map every output back onto its exact grid.

    Does what training did: resample to the checkpoint's ``target_spacing`` (if any),
    normalise as recorded (fixed statistics or the volume's own), then
    :func:`sliding_window`; labels return by nearest neighbour, disagreement (and
    probabilities/entropy) linearly.

    Parameters
    ----------
    model : LoadedModel
    volume : Volume
    return_probabilities, return_entropy : bool
        Extra float16 outputs (probabilities cost ``C`` half-precision volumes).
    progress : callable, optional
        ``progress(windows_done, windows_total)``.
    cancel : CancelToken, Event or callable, optional
    overlap, sw_batch_size, window
        See :func:`sliding_window`.
    check_memory : bool
        Refuse early when :func:`estimate_memory` exceeds the available RAM.

    Raises
    ------
    InvalidVolumeError
        Not 3D, empty, or NaN/Inf voxels.
    InsufficientMemoryError
        The machine does not have the memory this prediction needs.
    CancelledError
        ``cancel`` was set.
    """
    _check_volume(volume)
    target = model.target_spacing
    resample = needs_resampling(volume, target)
    if check_memory:
        need = prediction_memory(model, volume, window=window, sw_batch_size=sw_batch_size,
                                 return_probabilities=return_probabilities)
        have = available_memory()
        if have is not None and need > _MEMORY_HEADROOM * have:
            raise InsufficientMemoryError(
                f"predicting a volume of shape {volume.shape} needs about {need / 2**30:.1f} GiB of "
                f"memory but only {have / 2**30:.1f} GiB are available; close other programs, "
                "predict on a machine with more memory, or train with a coarser target spacing"
            )
    work = resample_volume(volume, target) if resample else volume
    stats = model.norm_stats_for(work.array)
    res = _run_window(model, work.array, stats, window, overlap, sw_batch_size, return_probabilities,
                      return_entropy, progress, cancel)
    del work  # a resampled copy is no longer needed
    if resample:
        geom = {"shape": list(res.labels.shape), "spacing": list(target), "origin": list(volume.origin),
                "direction": list(volume.direction)}
        labels = resample_to_reference(res.labels, geom, volume, is_label=True, default_value=0)
        dis = resample_to_reference(res.disagreement, geom, volume, is_label=False)
        probs = (
            np.stack([resample_to_reference(p, geom, volume, is_label=False) for p in res.probabilities])
            if res.probabilities is not None else None
        )
        ent = resample_to_reference(res.entropy, geom, volume, is_label=False) if res.entropy is not None else None
        res = SlidingWindowResult(labels, dis, probs, ent)
    return Prediction(
        labels=res.labels.astype(np.uint8, copy=False),
        disagreement=np.clip(res.disagreement, 0, 1).astype(np.float16, copy=False),
        probabilities=res.probabilities,
        entropy=res.entropy,
        class_names=model.class_names,
    )


def _run_window(model, image, stats, window, overlap, sw_batch_size, return_probabilities,
                return_entropy, progress, cancel) -> SlidingWindowResult:
    """:func:`sliding_window`, retried with one window per batch on CUDA out of memory."""
    kwargs = dict(window=window, overlap=overlap, return_probabilities=return_probabilities,
                  return_entropy=return_entropy, progress=progress, cancel=cancel, norm=stats)
    try:
        return sliding_window(model, image, sw_batch_size=sw_batch_size, **kwargs)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        if sw_batch_size > 1:
            try:
                return sliding_window(model, image, sw_batch_size=1, **kwargs)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
        raise InsufficientMemoryError(
            f"out of GPU memory predicting with window {tuple(window or model.patch_size)}; "
            "predict on the CPU (--device cpu) or use a smaller window"
        ) from None


# --------------------------------------------------------------------------- files
@dataclass
class PredictedFile:
    """Where :func:`predict_files` wrote one case's outputs."""

    image: Path
    labels: Path
    disagreement: Path | None
    mean_disagreement: float


def _output_name(path: Path) -> str:
    return strip_extension(path.name) if path.is_file() or path.suffix else path.name


def predict_files(
    model: LoadedModel,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    disagreement_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
    *,
    write_disagreement: bool = True,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
) -> list[PredictedFile]:
    """Predict image files and write NIfTI outputs on each input's grid, atomically.

    Writes ``out_dir/NAME.nii.gz`` (uint8 class map) and, with ``write_disagreement``,
    ``disagreement_dir/NAME_disagreement.nii.gz`` (float32; ``disagreement_dir`` defaults
    to ``out_dir``), where ``NAME`` is the input's file name without extension.

    Parameters
    ----------
    progress : callable, optional
        ``progress(case_index, n_cases, message)``; called per window with a message such
        as ``"case_001 (2/5): window 3/8"`` and once per finished case.
    cancel : CancelToken, Event or callable, optional
        Raises :class:`CancelledError` between windows; files already written stay.

    Raises
    ------
    InputFileError
        No input, an unreadable input, or two inputs with the same name.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputFileError("no image to predict")
    names = [_output_name(p) for p in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(f"several inputs would write the same output name: {', '.join(dupes)}")
    out = Path(out_dir)
    dis_dir = Path(disagreement_dir) if disagreement_dir is not None else out
    written: list[PredictedFile] = []
    n = len(files)
    for i, (path, name) in enumerate(zip(files, names, strict=True)):
        if _is_cancelled(cancel):
            raise CancelledError("prediction cancelled")
        volume = read_volume(path)

        def on_window(done: int, total: int, _i=i, _name=name) -> None:
            if progress is not None:
                progress(_i, n, f"{_name} ({_i + 1}/{n}): window {done}/{total}")

        pred = predict_volume(model, volume, progress=on_window, cancel=cancel,
                              overlap=overlap, sw_batch_size=sw_batch_size)
        lab_path = write_labels(pred.labels, volume, out / f"{name}.nii.gz")
        dis_path = None
        if write_disagreement:
            dis_path = write_volume(
                volume.with_array(pred.disagreement.astype(np.float32)),
                dis_dir / f"{name}{DISAGREEMENT_SUFFIX}.nii.gz",
            )
        mean_dis = float(np.mean(pred.disagreement, dtype=np.float64))
        written.append(PredictedFile(path, lab_path, dis_path, mean_dis))
        if progress is not None:
            progress(i + 1, n, f"{name} ({i + 1}/{n}): done")
    return written
