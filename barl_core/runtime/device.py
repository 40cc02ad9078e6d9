"""Which torch device a job runs on: ``auto`` picks CUDA, then Apple MPS, then the CPU.

Why here and not in the trainer: training, prediction and the plugin's device box all
resolve the same names, and a wrong name must fail the same way everywhere, before any
work starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from barl_core.errors import TrainingError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA, then Apple MPS, then CPU; explicit names are checked.

    Raises
    ------
    TrainingError
        The requested device is not available on this machine.
    """
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, mps, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device 'cuda' requested but no CUDA GPU is available (use --device auto or cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainingError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    elif dev.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise TrainingError("device 'mps' requested but Apple MPS is not available")
    elif dev.type != "cpu":
        raise TrainingError(f"unsupported device {name!r}; use auto, cpu, mps, cuda or cuda:N")
    return dev
