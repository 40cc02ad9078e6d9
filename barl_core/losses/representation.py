"""Representation-space alignment: class prototypes (region) and matched lesion instances.

Both work on the projection head's features at their (half) resolution: :func:`downsample_labels`
brings labels there, :func:`region_alignment_loss` aligns per-class prototypes of the two
branches, :func:`instance_matching_loss` matches connected components across branches
(Hungarian, :func:`match_instances`) and aligns the matched instances' features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from barl_core.data.labels import IGNORE_INDEX
from barl_core.losses.graph import no_autocast, zero_like_graph

__all__ = [
    "downsample_labels",
    "region_alignment_loss",
    "region_contrast_loss",
    "match_instances",
    "instance_matching_loss",
]


def downsample_labels(
    labels: Tensor, size: Sequence[int], *, num_classes: int | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Label map at a coarser grid (e.g. feature resolution) by majority vote of annotated voxels.

    Rule: each low-resolution voxel covers a block of high-resolution voxels (adaptive
    pooling, so any size works); it takes the most frequent *annotated* class in its block
    (ties to the lowest class id) and is ``ignore_index`` only when no voxel of the block is
    annotated. Nearest-neighbour sampling would silently drop every labelled slice that falls
    between the sampled positions, which with a few labelled slices can be all of them.

    Parameters
    ----------
    labels : LongTensor
        ``[B, *spatial]``.
    size : sequence of int
        Target spatial size.
    num_classes : int, optional
        Number of classes; inferred from the largest annotated value when omitted.
    ignore_index : int
        Value of unannotated voxels (kept, never mixed into a class).

    Returns
    -------
    LongTensor
        ``[B, *size]``.
    """
    labels = labels.long()
    valid = labels != ignore_index
    if num_classes is None:
        num_classes = int(labels[valid].max().item()) + 1 if bool(valid.any()) else 1
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    one_hot = F.one_hot(safe, num_classes).movedim(-1, 1).float() * valid.unsqueeze(1)
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
    fractions = pool[labels.ndim - 1](one_hot, tuple(int(s) for s in size))
    best_fraction, best = fractions.max(1)
    return torch.where(best_fraction > 0, best, torch.full_like(best, ignore_index))


def region_alignment_loss(
    feat_a: Tensor,
    feat_b: Tensor,
    region_labels: Tensor,
    num_classes: int,
    min_voxels: int = 8,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Class-prototype alignment between the branches' feature maps.

    For every sample and class with at least ``min_voxels`` voxels in ``region_labels`` (the
    same mask for both branches), the prototypes are the masked mean features of each branch;
    the loss is the mean over those (sample, class) pairs of ``1 - cos(P_a, P_b)``.

    Parameters
    ----------
    feat_a, feat_b : Tensor
        ``[B, F, *feat_spatial]``.
    region_labels : LongTensor
        ``[B, *feat_spatial]`` (see :func:`downsample_labels`), ``ignore_index`` excluded.
    num_classes : int
        Classes ``0..num_classes-1`` considered; other values are ignored.

    Returns
    -------
    Tensor
        Scalar; 0.0 when no class qualifies.
    """
    _check_features(feat_a, feat_b, region_labels)
    labels = region_labels.long().flatten(1)  # [B, N]
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    masks = F.one_hot(safe, num_classes).float() * valid.unsqueeze(-1)  # [B, N, K]
    counts = masks.sum(1)  # [B, K]
    fa = feat_a.float().flatten(2)  # [B, F, N]
    fb = feat_b.float().flatten(2)
    with no_autocast(fa):
        proto_a = torch.bmm(fa, masks) / counts.clamp(min=1).unsqueeze(1)  # [B, F, K]
        proto_b = torch.bmm(fb, masks) / counts.clamp(min=1).unsqueeze(1)
    cos = F.cosine_similarity(proto_a, proto_b, dim=1, eps=1e-8)  # [B, K]
    keep = (counts >= min_voxels).float()
    return ((1.0 - cos) * keep).sum() / keep.sum().clamp(min=1.0)


def region_contrast_loss(
    feat_a: Tensor,
    feat_b: Tensor,
    region_labels: Tensor,
    num_classes: int,
    temperature: float = 0.1,
    min_voxels: int = 8,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Cross-branch voxel-to-prototype contrast: each branch's voxels are classified by the other's prototypes.

    Why not :func:`region_alignment_loss`: with L2-normalised features, the two branches'
    masked-mean prototypes of a class point the same way within a few hundred iterations,
    so ``1 - cos`` falls below 0.001 and gives no gradient (measured on hippocampus, issue 11).
    Here the prototypes ``P_k^b`` are the normalised masked means of branch b over the whole
    batch (stop-gradient); each labelled voxel of branch a scores
    ``softmax_k(f_a . P_k^b / temperature)`` and takes the CE against its region label, and
    symmetrically for b. The loss only vanishes when every voxel is nearer the other branch's
    prototype of its own class than of any other class, by a margin the temperature sets, so it
    keeps shaping both representations. CE is averaged per class, then over classes, so
    a small class weighs as much as the background.

    Parameters
    ----------
    feat_a, feat_b : Tensor
        ``[B, F, *feat_spatial]``, L2-normalised per voxel.
    region_labels : LongTensor
        ``[B, *feat_spatial]``; ``ignore_index`` (and values outside ``0..num_classes-1``)
        take no part.
    num_classes : int
        Number of classes.
    temperature : float
        Softmax temperature of the similarities.
    min_voxels : int
        A class needs this many voxels in the batch to give a prototype.

    Returns
    -------
    Tensor
        Scalar; 0.0 (in the graph) when fewer than two classes qualify.
    """
    _check_features(feat_a, feat_b, region_labels)
    labels = region_labels.long().flatten()  # [B*N]
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    counts = torch.bincount(labels[valid], minlength=num_classes)
    present = torch.nonzero(counts >= min_voxels).flatten()
    if present.numel() < 2:
        return zero_like_graph(feat_a, feat_b)
    # voxels of the qualifying classes, and their index among the present classes
    lookup = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
    lookup[present] = torch.arange(present.numel(), device=labels.device)
    keep = valid & (lookup[torch.where(valid, labels, torch.zeros_like(labels))] >= 0)
    target = lookup[labels[keep]]
    fa = feat_a.float().movedim(1, -1).reshape(-1, feat_a.shape[1])[keep]  # [M, F]
    fb = feat_b.float().movedim(1, -1).reshape(-1, feat_b.shape[1])[keep]
    one_hot = F.one_hot(target, present.numel()).float()  # [M, K']
    with no_autocast(fa):
        with torch.no_grad():
            proto_a = F.normalize(one_hot.T @ fa.detach(), dim=1)  # [K', F]
            proto_b = F.normalize(one_hot.T @ fb.detach(), dim=1)
        ce_a = F.cross_entropy(fa @ proto_b.T / temperature, target, reduction="none")
        ce_b = F.cross_entropy(fb @ proto_a.T / temperature, target, reduction="none")
    per_class = (one_hot.T @ (ce_a + ce_b)) / one_hot.sum(0).clamp(min=1.0)  # [K']
    return 0.5 * per_class.mean()


def match_instances(
    fg_a: np.ndarray,
    fg_b: np.ndarray,
    min_size: int = 4,
    top_k: int = 8,
    iou_threshold: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, float]]]:
    """Pair the connected components of two foreground masks by Hungarian assignment on IoU.

    Components are 26-connected (3x3x3 structure); those smaller than ``min_size`` voxels are
    dropped and only the ``top_k`` largest per mask are kept (ties by label order). The
    assignment maximises the summed IoU (``linear_sum_assignment`` on ``-IoU``), which pairs
    fragments correctly where a greedy best-IoU-first choice would not; pairs below
    ``iou_threshold`` (or with no overlap) are dropped.

    Parameters
    ----------
    fg_a, fg_b : numpy.ndarray of bool
        One sample's foreground masks, same shape.

    Returns
    -------
    labels_a, labels_b : numpy.ndarray of int32
        Component label maps (0 = background).
    pairs : list of (int, int, float)
        ``(label in a, label in b, IoU)`` of each kept pair.
    """
    if fg_a.shape != fg_b.shape:
        raise ValueError(f"Foreground masks differ in shape: {fg_a.shape} vs {fg_b.shape}.")
    structure = np.ones((3,) * fg_a.ndim, dtype=bool)
    labels_a, n_a = ndimage.label(fg_a, structure=structure)
    labels_b, n_b = ndimage.label(fg_b, structure=structure)
    ids_a = _largest_components(labels_a, n_a, min_size, top_k)
    ids_b = _largest_components(labels_b, n_b, min_size, top_k)
    if ids_a.size == 0 or ids_b.size == 0:
        return labels_a, labels_b, []
    # Joint histogram of (label_a, label_b) gives every intersection in one pass.
    joint = np.bincount(
        labels_a.ravel().astype(np.int64) * (n_b + 1) + labels_b.ravel(),
        minlength=(n_a + 1) * (n_b + 1),
    ).reshape(n_a + 1, n_b + 1)
    inter = joint[np.ix_(ids_a, ids_b)].astype(np.float64)
    size_a = joint[ids_a].sum(1).astype(np.float64)
    size_b = joint[:, ids_b].sum(0).astype(np.float64)
    iou = inter / (size_a[:, None] + size_b[None, :] - inter)
    rows, cols = linear_sum_assignment(-iou)
    pairs = [
        (int(ids_a[r]), int(ids_b[c]), float(iou[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if iou[r, c] > 0 and iou[r, c] >= iou_threshold
    ]
    return labels_a, labels_b, pairs


def _largest_components(labels: np.ndarray, n: int, min_size: int, top_k: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    ids = np.flatnonzero(sizes >= min_size) + 1
    order = np.argsort(-sizes[ids - 1], kind="stable")
    return ids[order][:top_k]


def instance_matching_loss(
    feat_a: Tensor,
    feat_b: Tensor,
    fg_a: Tensor,
    fg_b: Tensor,
    min_size: int = 4,
    top_k: int = 8,
    iou_threshold: float = 0.1,
) -> Tensor:
    """Lesion-instance alignment: matched components should have similar mean features.

    Per sample, each branch's foreground is split into 26-connected components and the two
    sets are paired by :func:`match_instances`. For each pair the loss is
    ``1 - cos(mean of feat_a over A's component, mean of feat_b over B's component)``; the
    result is the mean over all pairs of the batch. Component labelling runs on CPU (the masks
    are detached); the feature pooling stays on the features' device, with gradients.

    Parameters
    ----------
    feat_a, feat_b : Tensor
        ``[B, F, *feat_spatial]``.
    fg_a, fg_b : BoolTensor
        ``[B, *feat_spatial]``: each branch's foreground prediction at feature resolution.

    Returns
    -------
    Tensor
        Scalar; exactly 0.0 when no pair is matched.
    """
    _check_features(feat_a, feat_b, fg_a)
    _check_features(feat_a, feat_b, fg_b)
    masks_a = fg_a.detach().bool().cpu().numpy()
    masks_b = fg_b.detach().bool().cpu().numpy()
    losses = []
    for i in range(feat_a.shape[0]):
        labels_a, labels_b, pairs = match_instances(
            masks_a[i], masks_b[i], min_size=min_size, top_k=top_k, iou_threshold=iou_threshold
        )
        if not pairs:
            continue
        ids_a = np.array([p[0] for p in pairs])
        ids_b = np.array([p[1] for p in pairs])
        proto_a = _component_means(feat_a[i], labels_a, ids_a)
        proto_b = _component_means(feat_b[i], labels_b, ids_b)
        losses.append(1.0 - F.cosine_similarity(proto_a, proto_b, dim=1, eps=1e-8))
    if not losses:
        return zero_like_graph(feat_a, feat_b)
    return torch.cat(losses).mean()


def _component_means(feat: Tensor, labels: np.ndarray, ids: np.ndarray) -> Tensor:
    """``[P, F]`` mean feature over each listed component of ``labels``."""
    masks = torch.from_numpy(labels.reshape(1, -1) == ids.reshape(-1, 1)).to(feat.device)
    masks = masks.float()  # [P, N]
    with no_autocast(feat):
        sums = masks @ feat.float().flatten(1).T  # [P, F]
    return sums / masks.sum(1, keepdim=True).clamp(min=1.0)


def _check_features(feat_a: Tensor, feat_b: Tensor, mask: Tensor) -> None:
    if feat_a.shape != feat_b.shape:
        raise ValueError(
            f"Branch features differ in shape: {tuple(feat_a.shape)} vs {tuple(feat_b.shape)}."
        )
    expected = (feat_a.shape[0], *feat_a.shape[2:])
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"Mask shape {tuple(mask.shape)} does not match the features' [B, *spatial] "
            f"{expected}; downsample it to feature resolution first."
        )
