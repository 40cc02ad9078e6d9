"""A trained network ready for prediction: :class:`LoadedModel` and :func:`load_model`.

A checkpoint holds more than weights: the class names, how training normalised intensities,
the working spacing and the training patch (the default inference window). Prediction needs
all of it, so the network travels with that metadata in one object.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from barl_core.data.normalization import NormalizationConfig, NormStats, compute_norm_stats
from barl_core.networks.unet import required_divisor
from barl_core.training.checkpoint import build_model, load_checkpoint

__all__ = ["LoadedModel", "load_model", "autocast_dtype", "PRECISIONS"]

#: Accepted values of the ``precision`` argument of prediction.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


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
        """Number of network branches (2 for BARL, CPS and mean teacher)."""
        return int(self.metadata.get("n_branches", 2))

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, background first, as training stored them."""
        return tuple(str(n) for n in self.metadata.get("class_names", ()))

    @property
    def num_classes(self) -> int:
        """Number of output classes, background included."""
        return int(self.metadata["network"]["num_classes"])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The training patch, also the default inference window."""
        return tuple(int(s) for s in self.metadata.get("patch_size", (32, 64, 64)))  # type: ignore[return-value]

    @property
    def target_spacing(self) -> tuple[float, float, float] | None:
        """Working spacing (z, y, x) in mm the model was trained at, or None (native grid)."""
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
        """Return the fixed statistics from training, or the volume's own (what training did)."""
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

    @torch.no_grad()
    def branch_logits_and_decoder(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Run each branch once, returning its finest logits and its last decoder map.

        The map is ``[B, base_channels, *x.shape[2:]]``: the same forward as
        :meth:`branch_logits`, keeping the map the finest head reads.
        """
        out = self.module.forward_logits_and_decoder(x)
        return tuple(out) if isinstance(out[0], (tuple, list)) else (out,)


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
    from barl_core.runtime.device import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    ckpt = load_checkpoint(path, map_location="cpu")
    module = build_model(ckpt).to(dev).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model_state", "optimizer_state", "scaler_state", "rng_state")}
    return LoadedModel(module=module, device=dev, metadata=meta, path=Path(path))



def _cpu_has_native_bf16() -> bool:
    """Tell whether oneDNN runs bfloat16 convolutions natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # older torch or a build without oneDNN
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Choose the autocast dtype of the network for ``precision`` on ``device``, or None (float32).

    ``"auto"`` takes what is both faster and safe on the device: float16 on CUDA (as training's
    AMP), bfloat16 on CPUs with native bfloat16 (measured in ``benchmarks/speed.py``: same
    labels on >99.9% of voxels, several times faster convolutions), float32 elsewhere, where a
    lower precision would only be emulated. Softmax, blending and disagreement always run in
    float32.

    Raises
    ------
    ValueError
        Unknown ``precision``, or float16 asked for off CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16":
        if device.type != "cuda":
            raise ValueError("float16 prediction needs a CUDA device; use bfloat16 or float32")
        return torch.float16
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None
