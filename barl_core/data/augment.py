"""Voxel-aligned weak and strong views of a batch of patches.

BARL's cross-branch terms compare the two branches voxel by voxel, so both views of a
patch must share *one* spatial transform (and the labels must follow it). Only the strong
view is perturbed further, and only photometrically (brightness, contrast, gamma, noise,
blur), which moves intensities but never voxels. The random crop itself is the patch
sampler's job; here: random flips along each axis and rot90 in the axial (y, x) plane.

Everything runs in torch on ``[B, 1, Z, Y, X]`` batches and draws from a
:class:`torch.Generator`, so a seeded run is reproducible and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "Views", "spatial_augment", "photometric_augment", "make_views"]


@dataclass
class AugmentConfig:
    """Augmentation strengths (probabilities and ranges), see module docstring.

    Parameters
    ----------
    flip_prob : float
        Probability of flipping each of the three axes.
    rot90_prob : float
        Probability of a rot90 (k in 1..3) in the axial plane; with non-square (y, x)
        patches only the 180 degree turn is used, so the patch shape never changes.
    brightness : float
        Additive shift drawn from U(-b, b) (intensities are z-scored).
    contrast : tuple of float
        Multiplicative factor range around the patch mean.
    gamma : tuple of float
        Gamma range, applied on the patch rescaled to [0, 1] and mapped back.
    noise_std : float
        Upper bound of the Gaussian noise standard deviation.
    blur_prob : float
        Probability of a Gaussian blur with sigma in ``blur_sigma`` (voxels).
    """

    flip_prob: float = 0.5
    rot90_prob: float = 0.5
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.75, 1.25)
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)


@dataclass
class Views:
    """Two voxel-aligned views of one batch and the labels on the same grid."""

    weak: torch.Tensor
    strong: torch.Tensor
    labels: torch.Tensor | None


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g).item())


def spatial_augment(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator,
    cfg: AugmentConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply one random flip/rot90 per sample to the images and (identically) the labels.

    Parameters
    ----------
    images : Tensor
        ``[B, C, Z, Y, X]``.
    labels : Tensor or None
        ``[B, Z, Y, X]`` integer labels following the same transform.
    generator : torch.Generator
        Source of randomness (CPU generator).
    cfg : AugmentConfig, optional

    Returns
    -------
    (Tensor, Tensor or None)
        Transformed copies; the input tensors are not modified.
    """
    cfg = cfg or AugmentConfig()
    square = images.shape[-1] == images.shape[-2]
    out_i, out_l = [], []
    for b in range(images.shape[0]):
        img = images[b]
        lab = labels[b] if labels is not None else None
        flip_dims = [d for d in range(3) if torch.rand((), generator=generator).item() < cfg.flip_prob]
        if flip_dims:
            img = torch.flip(img, [d + 1 for d in flip_dims])
            if lab is not None:
                lab = torch.flip(lab, flip_dims)
        if torch.rand((), generator=generator).item() < cfg.rot90_prob:
            k = int(torch.randint(1, 4, (), generator=generator).item()) if square else 2
            img = torch.rot90(img, k, dims=(-2, -1))
            if lab is not None:
                lab = torch.rot90(lab, k, dims=(-2, -1))
        out_i.append(img)
        if lab is not None:
            out_l.append(lab)
    imgs = torch.stack(out_i).contiguous()
    labs = torch.stack(out_l).contiguous() if labels is not None else None
    return imgs, labs


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable 3D Gaussian blur of ``[C, Z, Y, X]`` with replicate padding."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = x.unsqueeze(0)
    c = out.shape[1]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        weight = k.view(shape).repeat(c, 1, 1, 1, 1)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = radius
        pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), weight, groups=c)
    return out[0]


def photometric_augment(
    images: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig | None = None
) -> torch.Tensor:
    """Strong-view intensity perturbation; voxels never move.

    Each sample gets its own brightness, contrast, gamma, noise and (sometimes) blur.
    """
    cfg = cfg or AugmentConfig()
    out = []
    for b in range(images.shape[0]):
        x = images[b].clone()
        x = x + _uniform(generator, -cfg.brightness, cfg.brightness)
        mean = x.mean()
        x = (x - mean) * _uniform(generator, *cfg.contrast) + mean
        lo, hi = x.min(), x.max()
        span = (hi - lo).clamp_min(1e-6)
        x = ((x - lo) / span).clamp(0, 1) ** _uniform(generator, *cfg.gamma) * span + lo
        std = _uniform(generator, 0.0, cfg.noise_std)
        if std > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + std * noise.to(x.device)
        if torch.rand((), generator=generator).item() < cfg.blur_prob:
            x = _gaussian_blur(x, _uniform(generator, *cfg.blur_sigma))
        out.append(x)
    return torch.stack(out)


def make_views(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator,
    cfg: AugmentConfig | None = None,
) -> Views:
    """Weak view (spatial only) and strong view (same spatial + photometric) of a batch.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> v = make_views(torch.randn(2, 1, 8, 8, 8), None, g)
    >>> v.weak.shape == v.strong.shape
    True
    """
    weak, labs = spatial_augment(images, labels, generator, cfg)
    strong = photometric_augment(weak, generator, cfg)
    return Views(weak=weak, strong=strong, labels=labs)
