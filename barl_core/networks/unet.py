"""3D encoder-decoders for BARL: deep supervision at every decoder scale, projection features.

BARL co-trains two branches. Each is a 3D U-Net (V-Net-like widths) whose decoder has a
1x1x1 classifier at *every* stage, so the label-space losses (DPR, PCBC) can compare the
branches scale by scale; and a projection head on the last decoder feature map, so the
representation-space losses (region prototypes, instance matching) can compare features.

Scales are indexed coarse -> fine: for ``depth=4`` the heads sit at 1/8 (bottleneck), 1/4,
1/2 and full resolution, and every head's logits are upsampled (trilinear) to the input
size, so ``NetOutput.logits[-1]`` is the prediction and all entries share one shape.

Example
-------
>>> cfg = NetworkConfig(num_classes=3, base_channels=4, proj_dim=8)
>>> out = UNet3D(cfg)(torch.zeros(1, 1, 16, 16, 16))
>>> [tuple(t.shape) for t in out.logits][-1], tuple(out.features.shape)
((1, 3, 16, 16, 16), (1, 8, 8, 8, 8))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from barl_core.errors import InvalidVolumeError, TrainingError

__all__ = [
    "NetworkConfig",
    "NetOutput",
    "UNet3D",
    "BiBranchNet",
    "NetworkConfigError",
    "InputSizeError",
    "required_divisor",
    "count_parameters",
    "ema_update",
    "NORM_KINDS",
]

#: Normalisation layers a config may name.
NORM_KINDS = ("instance", "batch", "group")
_LEAKY_SLOPE = 0.01


class NetworkConfigError(TrainingError, ValueError):
    """A :class:`NetworkConfig` field is out of range (also a ``ValueError`` for callers)."""


class InputSizeError(InvalidVolumeError, ValueError):
    """An input's spatial size cannot pass through the network's down/up-sampling."""


@dataclass
class NetworkConfig:
    """Architecture of one branch; stored verbatim (``asdict``) in checkpoints.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for CBCT/CT).
    num_classes : int
        Output classes including background.
    base_channels : int
        Width of the first level; level ``l`` has ``base_channels * 2**l`` channels
        (16 for real training, 4-8 for tests).
    depth : int
        Resolution levels, including full resolution; there are ``depth`` deep-supervision
        scales and inputs must be divisible by ``2**(depth-1)``.
    proj_dim : int
        Output width of the 1x1x1 projection head; 0 uses the decoder features directly.
    norm : {"instance", "batch", "group"}
        Normalisation layer; instance norm is robust to the small batches of 3D training.
    dropout : float
        Channel dropout probability inside each conv block (0 disables it).
    feature_scale : int
        Average-pooling factor of the alignment features (2: half resolution), which keeps the
        instance/region losses cheap while staying voxel-aligned with the input.
    """

    in_channels: int = 1
    num_classes: int = 2
    base_channels: int = 16
    depth: int = 4
    proj_dim: int = 32
    norm: str = "instance"
    dropout: float = 0.0
    feature_scale: int = 2

    def __post_init__(self) -> None:
        """Refuse widths, depths and norms the network cannot build."""
        checks = [
            (self.in_channels >= 1, "in_channels must be >= 1"),
            (self.num_classes >= 2, "num_classes must be >= 2 (background + one class)"),
            (self.base_channels >= 1, "base_channels must be >= 1"),
            (self.depth >= 1, "depth must be >= 1"),
            (self.proj_dim >= 0, "proj_dim must be >= 0 (0 = no projection head)"),
            (self.norm in NORM_KINDS, f"norm must be one of {NORM_KINDS}, got {self.norm!r}"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.feature_scale >= 1, "feature_scale must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise NetworkConfigError(f"Invalid network configuration: {message}.")

    @property
    def feature_channels(self) -> int:
        """Channels of :attr:`NetOutput.features`."""
        return self.proj_dim if self.proj_dim > 0 else self.base_channels


class NetOutput(NamedTuple):
    """What a branch returns.

    Attributes
    ----------
    logits : list of Tensor
        ``[B, C, *input_spatial]`` per deep-supervision scale, coarse -> fine; the last is the
        prediction. With ``deep_supervision=False`` only the finest is present.
    features : Tensor or None
        ``[B, F, *input_spatial / feature_scale]``, float32: the last decoder map average-pooled
        by ``feature_scale``, through the projection head, L2-normalised per voxel; None when
        not requested.
    """

    logits: list[Tensor]
    features: Tensor | None


def required_divisor(cfg: NetworkConfig) -> int:
    """Every spatial input size must be a multiple of this (down-sampling and feature pooling)."""
    return math.lcm(2 ** (cfg.depth - 1), cfg.feature_scale)


def _check_input(x: Tensor, cfg: NetworkConfig) -> None:
    if x.ndim != 5:
        raise InputSizeError(
            f"Network input must be [batch, channels, z, y, x]; got shape {tuple(x.shape)}."
        )
    if x.shape[1] != cfg.in_channels:
        raise InputSizeError(
            f"Network expects {cfg.in_channels} input channel(s); got {x.shape[1]}."
        )
    divisor = required_divisor(cfg)
    bad = [s for s in x.shape[2:] if s % divisor]
    if bad:
        raise InputSizeError(
            f"Spatial size {tuple(x.shape[2:])} is not divisible by {divisor} "
            f"(2**(depth-1) with depth={cfg.depth}, feature_scale={cfg.feature_scale}); "
            "pad the volume or choose a patch size that is a multiple of it."
        )


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _ConvBlock(nn.Sequential):
    """Two 3x3x3 conv-norm-LeakyReLU layers (optional channel dropout in between)."""

    def __init__(self, c_in: int, c_out: int, norm: str, dropout: float) -> None:
        layers: list[nn.Module] = [
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.LeakyReLU(_LEAKY_SLOPE, inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        layers += [
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.LeakyReLU(_LEAKY_SLOPE, inplace=True),
        ]
        super().__init__(*layers)


class _Down(nn.Sequential):
    """Strided 2x2x2 convolution (learned down-sampling, as in V-Net) then a conv block."""

    def __init__(self, c_in: int, c_out: int, norm: str, dropout: float) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, 2, stride=2, bias=False),
            _norm(norm, c_out),
            nn.LeakyReLU(_LEAKY_SLOPE, inplace=True),
            _ConvBlock(c_out, c_out, norm, dropout),
        )


class _Up(nn.Module):
    """Transposed-conv up-sampling, concatenation with the skip, conv block."""

    def __init__(self, c_in: int, c_out: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(c_in, c_out, 2, stride=2)
        self.block = _ConvBlock(2 * c_out, c_out, norm, dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class UNet3D(nn.Module):
    """3D U-Net with a classifier at every decoder scale and a feature projection head.

    Parameters
    ----------
    cfg : NetworkConfig
        Architecture; ``required_divisor(cfg)`` gives the admissible input sizes.

    Notes
    -----
    Works under ``torch.autocast``: logits come out in the autocast dtype, features are
    normalised and pooled in float32 so that cosine similarities stay accurate.
    """

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_channels * 2**level for level in range(cfg.depth)]
        self.stem = _ConvBlock(cfg.in_channels, widths[0], cfg.norm, cfg.dropout)
        self.down = nn.ModuleList(
            _Down(widths[i], widths[i + 1], cfg.norm, cfg.dropout) for i in range(cfg.depth - 1)
        )
        self.up = nn.ModuleList(
            _Up(widths[i + 1], widths[i], cfg.norm, cfg.dropout)
            for i in reversed(range(cfg.depth - 1))
        )
        # heads[0] on the bottleneck (coarsest), heads[-1] on full resolution.
        self.heads = nn.ModuleList(
            nn.Conv3d(widths[i], cfg.num_classes, 1) for i in reversed(range(cfg.depth))
        )
        if cfg.proj_dim > 0:
            self.projection: nn.Module = nn.Sequential(
                nn.Conv3d(widths[0], widths[0], 1),
                nn.LeakyReLU(_LEAKY_SLOPE, inplace=True),
                nn.Conv3d(widths[0], cfg.proj_dim, 1),
            )
        else:
            self.projection = nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=_LEAKY_SLOPE, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def num_scales(self) -> int:
        """Deep-supervision scales S (= depth)."""
        return self.cfg.depth

    def forward(
        self, x: Tensor, *, deep_supervision: bool = True, return_features: bool = True
    ) -> NetOutput:
        """Run the branch.

        Parameters
        ----------
        x : Tensor
            ``[B, in_channels, Z, Y, X]`` with each spatial size divisible by
            ``required_divisor(cfg)``.
        deep_supervision : bool
            False skips the coarse heads (inference): ``logits`` holds only the finest.
        return_features : bool
            False skips the projection head; ``features`` is None.

        Raises
        ------
        InputSizeError
            The input is not 5-D, has the wrong channel count, or an indivisible size.
        """
        logits, h = self._decode(x, deep_supervision)
        features = self._features(h) if return_features else None
        return NetOutput(logits, features)

    def _decode(self, x: Tensor, deep_supervision: bool) -> tuple[list[Tensor], Tensor]:
        """Logits (as :meth:`forward`) and the last decoder feature map the finest head reads."""
        _check_input(x, self.cfg)
        size = x.shape[2:]
        h = self.stem(x)
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()  # the bottleneck is h itself

        logits: list[Tensor] = []
        if deep_supervision:
            logits.append(self._head(0, h, size))
        for i, up in enumerate(self.up, start=1):
            h = up(h, skips.pop())
            if deep_supervision or i == len(self.up):
                logits.append(self._head(i, h, size))
        if not logits:  # depth == 1 without deep supervision
            logits.append(self._head(0, h, size))
        return logits, h

    def forward_logits(self, x: Tensor) -> Tensor:
        """Finest logits only (``[B, C, *spatial]``): the cheap path for inference."""
        return self.forward(x, deep_supervision=False, return_features=False).logits[-1]

    def forward_logits_and_decoder(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Finest logits and the last decoder map ``[B, base_channels, *spatial]`` in one pass.

        The decoder map is what the finest head classifies; prediction pools it per slice for
        active learning's feature-space coverage without a second forward.
        """
        logits, h = self._decode(x, deep_supervision=False)
        return logits[-1], h

    def _head(self, index: int, h: Tensor, size: torch.Size) -> Tensor:
        out = self.heads[index](h)
        if out.shape[2:] != size:
            out = F.interpolate(out, size=size, mode="trilinear", align_corners=False)
        return out

    def _features(self, h: Tensor) -> Tensor:
        # Pool first, then project and normalise: the projection head and the normalisation
        # run on feature_scale**3 times fewer voxels (8x at 1/2), which made the feature path
        # the largest share of BARL's extra cost over CPS (docs/benchmarks.md, section 1b).
        if self.cfg.feature_scale > 1:
            h = F.avg_pool3d(h, kernel_size=self.cfg.feature_scale)
        return F.normalize(self.projection(h).float(), dim=1)


class BiBranchNet(nn.Module):
    """The two BARL branches in one module (one state_dict, one optimiser).

    Parameters
    ----------
    cfg : NetworkConfig
        Architecture shared by both branches.
    shared_init : bool
        False (BARL, CPS): the branches are initialised independently, which is what makes
        their disagreement informative. True: ``branch_b`` starts as a copy of ``branch_a``.
    ema_branch_a : bool
        Flag for the trainer: ``branch_a`` is an exponential moving average of ``branch_b``
        (no gradients; update it with :func:`ema_update`). Implies a copy at start. Off by
        default (design note). Mean Teacher uses the opposite roles, ``branch_b`` as the
        EMA teacher, and manages them itself.
    """

    def __init__(
        self, cfg: NetworkConfig, shared_init: bool = False, ema_branch_a: bool = False
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.ema_branch_a = ema_branch_a
        self.branch_a = UNet3D(cfg)
        self.branch_b = UNet3D(cfg)
        if shared_init:
            self.branch_b.load_state_dict(self.branch_a.state_dict())
        if ema_branch_a:
            self.branch_a.load_state_dict(self.branch_b.state_dict())
            self.branch_a.requires_grad_(False)

    def forward(
        self,
        x: Tensor,
        x_b: Tensor | None = None,
        *,
        deep_supervision: bool = True,
        return_features: bool = True,
    ) -> tuple[NetOutput, NetOutput]:
        """Run both branches.

        Parameters
        ----------
        x : Tensor
            Input of branch A (and of B when ``x_b`` is None).
        x_b : Tensor, optional
            A different, voxel-aligned view for branch B (weak/strong views).
        deep_supervision, return_features : bool
            As in :meth:`UNet3D.forward`.
        """
        kwargs = {"deep_supervision": deep_supervision, "return_features": return_features}
        out_a = self.branch_a(x, **kwargs)
        out_b = self.branch_b(x if x_b is None else x_b, **kwargs)
        return out_a, out_b

    def forward_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Finest logits of both branches (inference)."""
        return self.branch_a.forward_logits(x), self.branch_b.forward_logits(x)

    def forward_logits_and_decoder(self, x: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """:meth:`UNet3D.forward_logits_and_decoder` of both branches (inference)."""
        return self.branch_a.forward_logits_and_decoder(x), self.branch_b.forward_logits_and_decoder(x)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Count the parameters (all of them, or only those that require gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied.

    Used by Mean Teacher (teacher = EMA of student) and by the optional EMA branch.
    """
    for p_ema, p in zip(ema_model.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
