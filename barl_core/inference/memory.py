"""How much memory a prediction needs, and how much the machine has.

:func:`~barl_core.inference.predict.predict_volume` compares :func:`prediction_memory` with
:func:`available_memory` before it starts, so a volume too large for the machine stops at once
with :class:`InsufficientMemoryError` instead of being killed by the kernel half-way. The
terms of the estimate mirror the buffers of :func:`~barl_core.inference.window.sliding_window`
(see its module docstring for the layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from barl_core.data.resample import needs_resampling
from barl_core.errors import BarlError
from barl_core.inference.model import LoadedModel
from barl_core.inference.regrid import _SLAB_VOXELS
from barl_core.inference.window import _FINALISE_BYTES
from barl_core.io.budget import available_memory  # one reading of the machine, shared with io
from barl_core.io.volume import Volume

__all__ = [
    "InsufficientMemoryError",
    "available_memory",
    "estimate_memory",
    "prediction_memory",
    "MEMORY_HEADROOM",
]

#: Fraction of the available memory a prediction may plan to use.
MEMORY_HEADROOM = 0.9


class InsufficientMemoryError(BarlError):
    """The prediction would need more memory than the machine has available."""


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
    """Estimate the peak host bytes :func:`predict_volume` adds to a process.

    The process holds the model and the input volume; this is an upper estimate and counts
    the input too.

    Counts the input, the float16 ring buffer of Gaussian-weighted softmax sums, the uint8 class map
    and float16 disagreement (on the working grid and, when resampled, again on the input
    grid), optional float16 probabilities, the network's activations for one window batch,
    the normalisation-statistics sample and the finalisation temporaries. The first four grow
    with the volume; the rest is a fixed cost (~100-300 MiB) that dominates small volumes.
    """
    from barl_core.data.normalization import _STATS_MAX_SAMPLES

    n_in = int(np.prod([int(s) for s in shape], dtype=np.float64))
    work = [int(s) for s in (working_shape or shape)]
    n_work = int(np.prod(work, dtype=np.float64))
    wz = min(int(window[0]), work[0])
    plane = max(work[1], int(window[1])) * max(work[2], int(window[2]))
    ring = n_branches * (num_classes - 1) * wz * plane * 2  # float16, class 0 implied
    per_out = 1 + 2 + (2 * num_classes if return_probabilities else 0)
    total = n_in * input_itemsize + ring + n_work * per_out
    if working_shape is not None and tuple(work) != tuple(int(s) for s in shape):
        # the resampled float32 image; then the larger of SimpleITK's float32 copy of the input
        # (resampling to the working grid) and the outputs again on the input grid with the
        # slab temporaries of mapping them back (regrid)
        total += n_work * 4 + max(n_in * 4, n_in * per_out + 8 * _SLAB_VOXELS)
    # sliding_window shrinks the window to the volume along short axes
    win = int(np.prod([min(int(w), n) for w, n in zip(window, work, strict=True)], dtype=np.float64))
    per_voxel = _ACT_BYTES_FIXED + _ACT_BYTES_PER_CHANNEL * int(base_channels)
    total += sw_batch_size * win * (per_voxel + 4 * (1 + 3 * n_branches * num_classes))
    total += min(n_work, _STATS_MAX_SAMPLES) * 8 * 6  # float64 sample, percentile/clip/std copies
    # finalisation temporaries: one or a few slices at a time, ~(n_branches + 2) * C planes each
    total += 4 * max(_FINALISE_BYTES, (n_branches + 2) * num_classes * plane * 4)
    return int(total)


def prediction_memory(
    model: LoadedModel,
    volume: Volume,
    *,
    window: Sequence[int] | None = None,
    sw_batch_size: int = 1,
    return_probabilities: bool = False,
) -> int:
    """Estimate the memory :func:`predict_volume` of ``volume`` with ``model`` needs.

    This is :func:`estimate_memory` with the model's classes, branches, width, default window
    and working spacing: the figure the early refusal compares with the available memory.
    """
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

