"""Supervised loss and the BARL terms (DPR, PCBC, region and instance alignment).

Each term is one function, returning a finite scalar tensor that is exactly zero (and still
part of the autograd graph) when there is nothing to compare: no annotated voxel, no
disagreement, no class with enough voxels, no matched instance. :class:`LossConfig` holds the
weights and on/off switches a method combines them with; methods, not this package, decide
which branch output goes where. One module per family: ``config`` (weights, switches,
ramp-up), ``supervised``, ``label_space`` (DPR, PCBC), ``representation`` (region,
instance), ``graph`` (shared numerical helpers).

Conventions: ``logits`` arguments are lists of ``[B, C, *spatial]`` tensors ordered coarse ->
fine (see :class:`barl_core.networks.unet.NetOutput`); every computation runs in float32, so the
functions are safe to call inside ``torch.autocast``. Pseudo-labels are always detached
(stop-gradient).
"""

from barl_core.losses.config import (
    ALIGNMENT_TERMS,
    PCBC_MODES,
    REGION_MODES,
    LossConfig,
    LossConfigError,
    LossWeights,
    gaussian_rampup,
)
from barl_core.losses.label_space import dpr_loss, hard_labels, pcbc_loss
from barl_core.losses.representation import (
    downsample_labels,
    instance_matching_loss,
    match_instances,
    region_alignment_loss,
    region_contrast_loss,
)
from barl_core.losses.supervised import supervised_loss

__all__ = [
    "LossConfig",
    "LossWeights",
    "LossConfigError",
    "ALIGNMENT_TERMS",
    "PCBC_MODES",
    "REGION_MODES",
    "gaussian_rampup",
    "supervised_loss",
    "dpr_loss",
    "pcbc_loss",
    "region_alignment_loss",
    "region_contrast_loss",
    "instance_matching_loss",
    "match_instances",
    "downsample_labels",
    "hard_labels",
]
