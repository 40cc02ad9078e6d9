"""BARL losses: supervised, label-space (DPR, PCBC) and representation-space alignment.

Each term is one function, returning a finite scalar tensor that is exactly zero (and still
part of the autograd graph) when there is nothing to compare: no annotated voxel, no
disagreement, no class with enough voxels, no matched instance. :class:`LossConfig` holds the
weights and on/off switches a method combines them with (defaults from
``shared/design/barl_method.md``); methods, not this module, decide which branch output goes
where.

Conventions: ``logits`` arguments are lists of ``[B, C, *spatial]`` tensors ordered coarse ->
fine (see :class:`barl_core.networks.unet.NetOutput`); every computation runs in float32, so the
functions are safe to call inside ``torch.autocast``. Pseudo-labels are always detached
(stop-gradient).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import LabelValueError, TrainingError

__all__ = [
    "LossConfig",
    "LossWeights",
    "LossConfigError",
    "ALIGNMENT_TERMS",
    "PCBC_MODES",
    "gaussian_rampup",
    "supervised_loss",
    "dpr_loss",
    "pcbc_loss",
    "region_alignment_loss",
    "instance_matching_loss",
    "match_instances",
    "downsample_labels",
    "hard_labels",
]

#: The switchable cross-branch terms (names used by ``--disable``).
ALIGNMENT_TERMS = ("dpr", "pcbc", "region", "instance")
PCBC_MODES = ("disagreement", "urpc")
_EPS = 1e-6


class LossConfigError(TrainingError, ValueError):
    """A :class:`LossConfig` field is out of range or a term name is unknown."""


@dataclass
class LossConfig:
    """Weights, switches and parameters of the BARL loss terms.

    The total a method should form is
    ``L_sup + gaussian_rampup(it, total, rampup_fraction) * sum(weight(t) * L_t)``
    over :data:`ALIGNMENT_TERMS`.

    Parameters
    ----------
    dpr, pcbc, region, instance : float
        Weights of the alignment terms (1.0, 0.5, 0.1, 0.1).
    use_dpr, use_pcbc, use_region, use_instance : bool
        Ablation switches; a disabled term has weight 0 and need not be computed.
    dpr_threshold : float
        DPR uses only voxels whose pseudo-label confidence is >= this (0: all voxels).
    pcbc_area_floor : float
        PCBC divides by max(disagreement area, floor * volume) so a tiny disagreement area
        does not blow the term up.
    pcbc_mode : {"disagreement", "urpc"}
        BARL's disagreement-masked correction, or URPC-style uncertainty rectification.
    region_min_voxels : int
        A class takes part in region alignment only with at least this many voxels.
    instance_min_size, instance_top_k, instance_iou_threshold
        Connected components smaller than ``min_size`` voxels are dropped, only the
        ``top_k`` largest per branch are matched, pairs below the IoU threshold are dropped.
    rampup_fraction : float
        Fraction of the iterations over which the alignment weight ramps up.
    ignore_index : int
        Label value of unannotated voxels.
    """

    dpr: float = 1.0
    pcbc: float = 0.5
    region: float = 0.1
    instance: float = 0.1
    use_dpr: bool = True
    use_pcbc: bool = True
    use_region: bool = True
    use_instance: bool = True
    dpr_threshold: float = 0.0
    pcbc_area_floor: float = 0.01
    pcbc_mode: str = "disagreement"
    region_min_voxels: int = 8
    instance_min_size: int = 4
    instance_top_k: int = 8
    instance_iou_threshold: float = 0.1
    rampup_fraction: float = 0.4
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        checks = [
            (min(self.dpr, self.pcbc, self.region, self.instance) >= 0, "weights must be >= 0"),
            (0.0 <= self.dpr_threshold < 1.0, "dpr_threshold must be in [0, 1)"),
            (0.0 < self.pcbc_area_floor <= 1.0, "pcbc_area_floor must be in (0, 1]"),
            (self.pcbc_mode in PCBC_MODES, f"pcbc_mode must be one of {PCBC_MODES}"),
            (self.region_min_voxels >= 1, "region_min_voxels must be >= 1"),
            (self.instance_min_size >= 1, "instance_min_size must be >= 1"),
            (self.instance_top_k >= 1, "instance_top_k must be >= 1"),
            (0.0 <= self.instance_iou_threshold <= 1.0, "instance_iou_threshold in [0, 1]"),
            (0.0 <= self.rampup_fraction <= 1.0, "rampup_fraction must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise LossConfigError(f"Invalid loss configuration: {message}.")

    def enabled(self, term: str) -> bool:
        """Whether alignment term ``term`` is switched on."""
        return bool(getattr(self, f"use_{_check_term(term)}"))

    def weight(self, term: str) -> float:
        """The term's weight, 0.0 when it is switched off."""
        return float(getattr(self, term)) if self.enabled(term) else 0.0

    def enabled_terms(self) -> tuple[str, ...]:
        """The alignment terms that are on, in canonical order."""
        return tuple(t for t in ALIGNMENT_TERMS if self.enabled(t))

    def disable(self, terms: Iterable[str] | str) -> LossConfig:
        """A copy with ``terms`` switched off (names, or one comma-separated string as in
        ``--disable dpr,pcbc``).

        Raises
        ------
        LossConfigError
            A name is not one of :data:`ALIGNMENT_TERMS`.
        """
        if isinstance(terms, str):
            terms = [t for t in terms.split(",") if t.strip()]
        return replace(self, **{f"use_{_check_term(t)}": False for t in terms})


#: Alias: the same dataclass under the name some callers use.
LossWeights = LossConfig


def _check_term(term: str) -> str:
    name = term.strip().lower()
    if name not in ALIGNMENT_TERMS:
        raise LossConfigError(
            f"Unknown loss term {term!r}; choose among {', '.join(ALIGNMENT_TERMS)}."
        )
    return name


def gaussian_rampup(iteration: int, total: int, fraction: float = 0.4) -> float:
    """Weight in [0, 1] of the unsupervised terms: ``exp(-5 (1 - t)^2)``, t = it / (f * total).

    Consistency targets from an untrained network are noise; the ramp lets the supervised
    term shape the branches first. Returns 1.0 once ``iteration >= fraction * total`` (and
    always when the ramp length is 0).
    """
    length = fraction * total
    if length <= 0:
        return 1.0
    t = min(max(iteration / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def _no_autocast(t: Tensor) -> torch.autocast:
    """Disable autocast: prototype sums run over up to ~10^5 voxels and overflow float16."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _zero_like_graph(*tensors: Tensor) -> Tensor:
    """Exact 0.0 that stays in the autograd graph (so ``backward()`` always works)."""
    return sum((t.float().sum() * 0.0 for t in tensors), torch.zeros((), device=tensors[0].device))


# --------------------------------------------------------------------------- supervised


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


# --------------------------------------------------------------------------- label space


def hard_labels(logits: Tensor) -> Tensor:
    """Detached class decision ``argmax`` over dim 1 of ``[B, C, *spatial]`` logits.

    Computed as ``max(1).indices`` (the first maximal class, as ``argmax``): on CPU,
    ``argmax`` over a non-innermost dimension takes a slow path, about 10x slower than
    ``max`` (26 vs 2-4 ms on a ``[4, 3, 32, 48, 32]`` tensor, 2 cores), and the BARL
    losses take a dozen such decisions per iteration.
    """
    with torch.no_grad():
        return logits.detach().max(1).indices


def _masked_ce(logits: Tensor, pseudo: Tensor, mask: Tensor | None) -> Tensor:
    """Mean CE over ``mask`` voxels (all voxels when None); 0 when the mask is empty."""
    ce = F.cross_entropy(logits.float(), pseudo, reduction="none")
    if mask is None:
        return ce.mean()
    mask = mask.float()
    return (ce * mask).sum() / mask.sum().clamp(min=1.0)


def dpr_loss(
    logits_a: Sequence[Tensor],
    logits_b: Sequence[Tensor],
    threshold: float = 0.0,
    pseudo_a: Sequence[Tensor] | None = None,
    pseudo_b: Sequence[Tensor] | None = None,
) -> Tensor:
    """Dual-Path Regularization: cross pseudo-supervision at every decoder scale.

    Per scale s: ``CE(p_s^B, sg(argmax p_s^A)) + CE(p_s^A, sg(argmax p_s^B))``, mean over
    scales. With ``threshold > 0`` only voxels whose pseudo-label probability reaches it are
    used (each direction masked by its own teacher's confidence).

    Identical, confident branches give (near) zero; identical but uncertain branches do not,
    since CE against one's own argmax is the entropy-like ``-log max p``.

    ``pseudo_a`` / ``pseudo_b`` (per scale, :func:`hard_labels` of the logits) may be passed
    when the caller already has them (they are shared with :func:`pcbc_loss`); they are
    recomputed otherwise, and always when ``threshold > 0`` (the confidence is needed).
    """
    _check_pair(logits_a, logits_b)
    total = logits_a[-1].new_zeros((), dtype=torch.float32)
    for s, (la, lb) in enumerate(zip(logits_a, logits_b, strict=True)):
        mask_a = mask_b = None
        if threshold > 0:
            with torch.no_grad():
                conf_a, target_a = torch.softmax(la.float(), 1).max(1)
                conf_b, target_b = torch.softmax(lb.float(), 1).max(1)
            mask_a, mask_b = conf_a >= threshold, conf_b >= threshold
        else:
            target_a = pseudo_a[s] if pseudo_a is not None else hard_labels(la)
            target_b = pseudo_b[s] if pseudo_b is not None else hard_labels(lb)
        total = total + _masked_ce(lb, target_a, mask_a) + _masked_ce(la, target_b, mask_b)
    return total / len(logits_a)


def pcbc_loss(
    logits_a: Sequence[Tensor],
    logits_b: Sequence[Tensor],
    area_floor: float = 0.01,
    mode: str = "disagreement",
    pseudo_a: Sequence[Tensor] | None = None,
    pseudo_b: Sequence[Tensor] | None = None,
) -> Tensor:
    """Progressively Cognitive Bias Correction across decoder scales.

    ``mode="disagreement"`` (BARL): for s = 2..S, on voxels where the branches' argmax
    disagreed at scale s-1, each branch's scale-s prediction is pulled (CE) towards the
    *other* branch's finest pseudo-label (stop-gradient): errors of a coarse scale are
    corrected at the next finer one before they propagate. Each scale's sum is divided by
    ``max(disagreement area, area_floor * number of voxels)`` and weighted by
    ``w_s = (s-1)/(S-1)``; the result is the weighted mean over scales (sum of w_s * L_s
    divided by the sum of w_s). Zero when the branches never disagree or S < 2.

    ``mode="urpc"``: uncertainty-rectified pyramid consistency over both branches: the
    target is the mean of the two finest softmaxes (stop-gradient); for every branch and
    scale, the per-voxel KL(p_s || target) is the uncertainty u, and the loss is
    ``sum(exp(-u) * ||p_s - target||^2) / sum(exp(-u)) + mean(u)``, averaged over scales and
    branches.

    ``pseudo_a`` / ``pseudo_b``: optional per-scale :func:`hard_labels` of the logits
    (computed here when omitted).
    """
    _check_pair(logits_a, logits_b)
    if mode == "urpc":
        return _urpc_loss(logits_a, logits_b)
    if mode != "disagreement":
        raise LossConfigError(f"Unknown PCBC mode {mode!r}; choose among {PCBC_MODES}.")
    n_scales = len(logits_a)
    if n_scales < 2:
        return _zero_like_graph(logits_a[-1], logits_b[-1])
    hard_a = list(pseudo_a) if pseudo_a is not None else [hard_labels(t) for t in logits_a]
    hard_b = list(pseudo_b) if pseudo_b is not None else [hard_labels(t) for t in logits_b]
    total = logits_a[-1].new_zeros((), dtype=torch.float32)
    weight_sum = 0.0
    for s in range(1, n_scales):  # 0-based index of scale s+1 in 1-based notation
        with torch.no_grad():
            disagree = (hard_a[s - 1] != hard_b[s - 1]).float()
            area = disagree.sum().clamp(min=area_floor * disagree.numel())
        ce_a = F.cross_entropy(logits_a[s].float(), hard_b[-1], reduction="none")
        ce_b = F.cross_entropy(logits_b[s].float(), hard_a[-1], reduction="none")
        weight = s / (n_scales - 1)
        total = total + weight * ((ce_a + ce_b) * disagree).sum() / area
        weight_sum += weight
    return total / weight_sum


def _urpc_loss(logits_a: Sequence[Tensor], logits_b: Sequence[Tensor]) -> Tensor:
    with torch.no_grad():
        target = 0.5 * (
            torch.softmax(logits_a[-1].float(), 1) + torch.softmax(logits_b[-1].float(), 1)
        )
        log_target = torch.log(target.clamp(min=_EPS))
    terms = []
    for scale_logits in (*logits_a, *logits_b):
        log_p = torch.log_softmax(scale_logits.float(), 1)
        p = log_p.exp()
        uncertainty = (p * (log_p - log_target)).sum(1)  # KL(p_s || target) per voxel
        weight = torch.exp(-uncertainty)
        squared = ((p - target) ** 2).sum(1)
        terms.append((weight * squared).sum() / weight.sum().clamp(min=_EPS) + uncertainty.mean())
    return torch.stack(terms).mean()


def _check_pair(logits_a: Sequence[Tensor], logits_b: Sequence[Tensor]) -> None:
    if len(logits_a) == 0 or len(logits_a) != len(logits_b):
        raise ValueError(
            f"Both branches must give the same, non-zero number of scales "
            f"(got {len(logits_a)} and {len(logits_b)})."
        )


# --------------------------------------------------------------------------- representation space


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
    with _no_autocast(fa):
        proto_a = torch.bmm(fa, masks) / counts.clamp(min=1).unsqueeze(1)  # [B, F, K]
        proto_b = torch.bmm(fb, masks) / counts.clamp(min=1).unsqueeze(1)
    cos = F.cosine_similarity(proto_a, proto_b, dim=1, eps=1e-8)  # [B, K]
    keep = (counts >= min_voxels).float()
    return ((1.0 - cos) * keep).sum() / keep.sum().clamp(min=1.0)


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
        return _zero_like_graph(feat_a, feat_b)
    return torch.cat(losses).mean()


def _component_means(feat: Tensor, labels: np.ndarray, ids: np.ndarray) -> Tensor:
    """``[P, F]`` mean feature over each listed component of ``labels``."""
    masks = torch.from_numpy(labels.reshape(1, -1) == ids.reshape(-1, 1)).to(feat.device)
    masks = masks.float()  # [P, N]
    with _no_autocast(feat):
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
