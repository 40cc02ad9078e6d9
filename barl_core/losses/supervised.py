"""The supervised term: cross-entropy + soft Dice on annotated voxels only, over every scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import LabelValueError

__all__ = ["supervised_loss"]


def supervised_loss(logits: Sequence[Tensor], target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean over scales of cross-entropy + soft Dice, on annotated voxels only.

    Voxels equal to ``ignore_index`` contribute nothing (neither to CE nor to Dice), which is
    what makes a volume with a few labelled slices usable for training.

    Parameters
    ----------
    logits : list of Tensor
        ``[B, C, *spatial]`` per scale.
    target : LongTensor
        ``[B, *spatial]`` with values in ``0..C-1`` or ``ignore_index``.
    ignore_index : int
        Value of unannotated voxels.

    Returns
    -------
    Tensor
        Scalar; 0.0 (in the graph) when no voxel is annotated.

    Raises
    ------
    LabelValueError
        A target value is neither a class nor the ignore value.
    """
    num_classes = logits[-1].shape[1]
    target = target.long()
    valid = target != ignore_index
    if bool(((target < 0) | (target >= num_classes))[valid].any()):
        raise LabelValueError(
            f"Target holds values outside 0..{num_classes - 1} and the ignore value {ignore_index}."
        )
    safe = torch.where(valid, target, torch.zeros_like(target))
    n_valid = valid.sum().clamp(min=1)
    mask = valid.unsqueeze(1).float()
    one_hot = F.one_hot(safe, num_classes).movedim(-1, 1).float() * mask
    reduce_dims = [0, *range(2, target.ndim + 1)]
    total = logits[-1].new_zeros((), dtype=torch.float32)
    for scale_logits in logits:
        x = scale_logits.float()
        ce = F.cross_entropy(x, target, ignore_index=ignore_index, reduction="sum") / n_valid
        probs = torch.softmax(x, dim=1) * mask
        intersection = (probs * one_hot).sum(reduce_dims)
        denominator = probs.sum(reduce_dims) + one_hot.sum(reduce_dims)
        dice = (2.0 * intersection + 1e-5) / (denominator + 1e-5)
        total = total + ce + (1.0 - dice).mean()
    return total / len(logits)
