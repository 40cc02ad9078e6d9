"""What the checks ask of the device: CUDA or not, peak and free GPU memory.

Why apart: every check measures memory the same way, and on the CPU every answer is ``None``
(or a no-op), so the checks run unchanged there with ``--device cpu --tiny``.
"""

from __future__ import annotations

__all__ = ["is_cuda", "reset_peak", "peak_mib", "free_bytes"]


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def reset_peak(device: str) -> None:
    import torch

    if is_cuda(device):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if is_cuda(device) else None


def free_bytes(device: str) -> int | None:
    """Free memory of the device as every process sees it (None on the CPU)."""
    import torch

    if not is_cuda(device):
        return None
    torch.cuda.synchronize()
    free, _ = torch.cuda.mem_get_info()
    return int(free)
