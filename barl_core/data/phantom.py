"""A seeded synthetic dental CBCT volume with exact ground truth.

Why a phantom: the demo, the unit tests and the benchmarks need 3D data with known
labels that anyone can regenerate, of any size (48^3 for a test, 512^3 for a memory
benchmark), without shipping patient data. It is built to be *not trivially
separable*: the lesions are small, fragmented, multi-focal and only moderately darker
than the textured trabecular bone around them, and the usual CBCT degradations
(blur, signal-dependent noise, metal streaks, cupping) sit on top.

Anatomy (physical millimetres, scaled to the field of view, so a finer grid gives
the same anatomy at higher resolution):

- a **jaw arch**: a U-shaped curve in the axial ``(y, x)`` plane; the bone is an
  elliptic tube around it (cortical shell brighter than the textured trabecular core);
- a **row of teeth** standing on the arch: crown (enamel shell over dentin, pulp
  inside) above the bone crest, a tapering root into the bone with a thin dark
  periodontal ligament around it; optionally one metal filling;
- a few **periapical lesions** near root apices, each made of one to three dark,
  irregular blobs (some touching, some apart), restricted to bone.

Classes: :data:`PHANTOM_CLASSES`. Arrays are ``(z, y, x)``; z grows towards the crowns.
Everything is vectorised float32 and rendered in z-slabs, so a 512^3 volume needs
roughly two volumes' worth of memory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InvalidVolumeError
from barl_core.io.volume import Volume, atomic_path, write_labels, write_volume

__all__ = [
    "PHANTOM_CLASSES",
    "PhantomConfig",
    "make_phantom",
    "make_phantom_dataset",
    "choose_annotated_slices",
    "sparsify_labels",
]

PHANTOM_CLASSES = ("background", "bone", "tooth", "lesion")
BACKGROUND, BONE, TOOTH, LESION = range(4)
_SLAB = 32  # z-slices rendered at a time (bounds temporary memory at 512^3)


@dataclass
class PhantomConfig:
    """Geometry, anatomy and artefact settings of the phantom.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)`` voxels.
    spacing : tuple of float
        ``(z, y, x)`` mm; anisotropic by default, as CBCT exports often are.
    seed : int
        Everything random (arch shape, teeth, lesions, noise) follows from it.
    n_teeth : int
        Teeth on a complete arch; up to ``max_missing_teeth`` of them may be absent.
    n_lesions : int
        Lesion sites; each has 1..``max_lesion_fragments`` blobs.
    noise_std : float
        Gaussian noise (HU) in soft tissue; denser tissue gets more (photon starvation).
    blur_mm : float
        Gaussian point spread (sigma, mm).
    streaks : bool
        Metal streaks radiating from a filled tooth (needs ``metal``).
    cupping : float
        Relative intensity drop towards the centre of the field of view.
    lesion_contrast : float
        How much darker (HU) the lesion is than trabecular bone.
    """

    shape: tuple[int, int, int] = (64, 96, 96)
    spacing: tuple[float, float, float] = (0.4, 0.3, 0.3)
    seed: int = 0
    n_teeth: int = 8
    max_missing_teeth: int = 2
    n_lesions: int = 3
    max_lesion_fragments: int = 3
    lesion_radius: tuple[float, float] = (3.0, 4.6)  # in % of the field of view
    noise_std: float = 80.0
    blur_mm: float = 0.3
    texture_std: float = 110.0
    streaks: bool = True
    streak_strength: float = 700.0
    metal: bool = True
    cupping: float = 0.12
    hu_air: float = -1000.0
    hu_soft: float = 40.0
    hu_trabecular: float = 380.0
    hu_cortical: float = 1400.0
    hu_dentin: float = 1700.0
    hu_enamel: float = 2700.0
    hu_pulp: float = 250.0
    hu_ligament: float = 60.0
    hu_metal: float = 6000.0
    lesion_contrast: float = 320.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse shapes and parameters the phantom cannot draw."""
        self.shape = tuple(int(s) for s in self.shape)  # type: ignore[assignment]
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise InvalidVolumeError(f"phantom shape must be three sizes >= 8, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise InvalidVolumeError(
                f"phantom spacing must be three positive values, got {self.spacing}"
            )
        if self.n_teeth < 1 or self.n_lesions < 0 or self.max_lesion_fragments < 1:
            raise InvalidVolumeError("phantom needs n_teeth >= 1, n_lesions >= 0, fragments >= 1")
        if int(np.prod(self.shape, dtype=np.float64)) > 1024**3:
            raise InvalidVolumeError(f"phantom shape {self.shape} is too large (max 1024^3 voxels)")


class _SmoothField:
    """A smooth random field evaluated block by block (trabecular texture).

    The field is white noise on a coarse physical grid, interpolated with separable
    Gaussian weights; any block costs three small matrix products, so no full-size
    temporary is needed and every block agrees with every other.
    """

    def __init__(self, rng: np.random.Generator, shape, spacing, cell_mm: float):
        self.shape = shape
        self.weights = []
        coarse = []
        for n, sp in zip(shape, spacing, strict=True):
            length = n * sp
            m = max(2, int(math.ceil(length / cell_mm)) + 3)
            centres = (np.arange(m) - 1.5) * cell_mm
            pos = (np.arange(n) + 0.5) * sp
            w = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) / (0.6 * cell_mm)) ** 2)
            w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # unit variance everywhere
            self.weights.append(w.astype(np.float32))
            coarse.append(m)
        self.coarse = rng.standard_normal(coarse, dtype=np.float32)
        # pre-apply y and x (small: coarse_z x Y x X)
        wz, wy, wx = self.weights
        self._yx = np.einsum("cba,yb,xa->cyx", self.coarse, wy, wx, optimize=True)

    def block(self, zs: slice, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        wz = self.weights[0][zs]
        return np.tensordot(wz, self._yx[:, ys, xs], axes=(1, 0)).astype(np.float32, copy=False)


def _arch(rng: np.random.Generator, ly: float, lx: float, u: float):
    """Sample the arch curve: returns dense points (y, x) in mm and their angle."""
    phi_max = rng.uniform(0.42, 0.55) * math.pi
    rx = rng.uniform(0.30, 0.36) * lx
    ry = rng.uniform(0.42, 0.52) * ly
    cx = lx / 2 + rng.uniform(-2, 2) * u
    y0 = rng.uniform(0.16, 0.22) * ly
    asym = rng.uniform(-0.06, 0.06)

    def curve(phi):
        phi = np.asarray(phi, dtype=np.float64)
        x = cx + rx * np.sin(phi) * (1 + asym * np.sign(phi))
        y = y0 + ry * (1 - np.cos(phi))
        return y, x

    return curve, phi_max


def _rasterised_distance(curve, phi_max, shape_yx, sp_yx) -> tuple[np.ndarray, np.ndarray]:
    """2D distance (mm) of every axial pixel to the arch, and the arch angle nearest to it."""
    ny, nx = shape_yx
    sy, sx = sp_yx
    n = 8 * max(ny, nx)
    phis = np.linspace(-phi_max, phi_max, n)
    y, x = curve(phis)
    iy = np.clip(np.round(y / sy - 0.5).astype(int), 0, ny - 1)
    ix = np.clip(np.round(x / sx - 0.5).astype(int), 0, nx - 1)
    on_curve = np.zeros((ny, nx), dtype=bool)
    on_curve[iy, ix] = True
    phi_img = np.zeros((ny, nx), dtype=np.float32)
    phi_img[iy, ix] = phis
    dist, (ny_idx, nx_idx) = ndimage.distance_transform_edt(
        ~on_curve, sampling=(sy, sx), return_indices=True
    )
    return dist.astype(np.float32), phi_img[ny_idx, nx_idx]


def _box(center_mm, half_mm, spacing, shape) -> tuple[slice, slice, slice]:
    sl = []
    for c, h, sp, n in zip(center_mm, half_mm, spacing, shape, strict=True):
        lo = int(max(0, math.floor((c - h) / sp - 0.5)))
        hi = int(min(n, math.ceil((c + h) / sp + 0.5) + 1))
        sl.append(slice(lo, max(lo, hi)))
    return tuple(sl)  # type: ignore[return-value]


def _coords(box, spacing):
    """Physical voxel-centre coordinates (mm) of a box, broadcastable (z, y, x)."""
    zs, ys, xs = box
    z = ((np.arange(zs.start, zs.stop) + 0.5) * spacing[0]).astype(np.float32)[:, None, None]
    y = ((np.arange(ys.start, ys.stop) + 0.5) * spacing[1]).astype(np.float32)[None, :, None]
    x = ((np.arange(xs.start, xs.stop) + 0.5) * spacing[2]).astype(np.float32)[None, None, :]
    return z, y, x


def make_phantom(config: PhantomConfig | None = None, **overrides) -> tuple[Volume, np.ndarray]:
    """Render one phantom volume and its ground truth.

    Parameters
    ----------
    config : PhantomConfig, optional
    **overrides
        Fields of :class:`PhantomConfig` to change, e.g. ``make_phantom(seed=3)``.

    Returns
    -------
    volume : Volume
        float32 HU-like intensities with the configured spacing (origin 0, identity
        direction).
    labels : numpy.ndarray
        uint8 on the same grid, classes :data:`PHANTOM_CLASSES`.

    Examples
    --------
    >>> vol, lab = make_phantom(shape=(32, 48, 48), seed=1)
    >>> vol.shape == lab.shape
    True
    """
    cfg = replace(config or PhantomConfig(), **overrides)
    rng = np.random.default_rng(cfg.seed)
    nz, ny, nx = cfg.shape
    sz, sy, sx = cfg.spacing
    lz, ly, lx = nz * sz, ny * sy, nx * sx
    u = min(ly, lx) / 100.0  # anatomy unit: 1% of the axial field of view

    img = np.empty(cfg.shape, dtype=np.float32)
    labels = np.zeros(cfg.shape, dtype=np.uint8)

    # ---- arch and bone (an extrusion: 2D maps x 1D z profile, rendered per slab)
    curve, phi_max = _arch(rng, ly, lx, u)
    dist2d, _ = _rasterised_distance(curve, phi_max, (ny, nx), (sy, sx))
    w0 = rng.uniform(8.0, 10.0) * u  # in-plane half-width of the bone
    zb = rng.uniform(0.34, 0.40) * lz  # bone tube centre height
    hz = rng.uniform(0.24, 0.30) * lz  # bone tube half-height
    cortical = 1.0 - rng.uniform(1.3, 1.8) * u / w0
    texture = _SmoothField(rng, cfg.shape, cfg.spacing, cell_mm=1.6 * u)
    yy = ((np.arange(ny) + 0.5) * sy).astype(np.float32)[:, None]
    xx = ((np.arange(nx) + 0.5) * sx).astype(np.float32)[None, :]
    soft2d = ((yy - 0.47 * ly) / (0.50 * ly)) ** 2 + ((xx - 0.5 * lx) / (0.47 * lx)) ** 2 < 1.0
    d2 = (dist2d / w0) ** 2
    for z0 in range(0, nz, _SLAB):
        zs = slice(z0, min(nz, z0 + _SLAB))
        zc = ((np.arange(zs.start, zs.stop) + 0.5) * sz).astype(np.float32)[:, None, None]
        rn = np.sqrt(d2[None] + ((zc - zb) / hz) ** 2)
        tex = texture.block(zs)
        block = np.where(soft2d[None], np.float32(cfg.hu_soft), np.float32(cfg.hu_air))
        bone = rn < 1.0
        trab = cfg.hu_trabecular + cfg.texture_std * tex
        cort = cfg.hu_cortical + 0.3 * cfg.texture_std * tex
        block = np.where(bone, np.where(rn > cortical, cort, trab), block)
        img[zs] = block
        labels[zs][bone] = BONE

    # ---- teeth
    n_teeth = max(1, cfg.n_teeth - int(rng.integers(0, cfg.max_missing_teeth + 1)))
    slots = np.linspace(-0.86 * phi_max, 0.86 * phi_max, cfg.n_teeth)
    keep = np.sort(rng.choice(cfg.n_teeth, size=n_teeth, replace=False))
    phis = slots[keep] + rng.uniform(-0.25, 0.25, n_teeth) * (
        slots[1] - slots[0] if cfg.n_teeth > 1 else 0
    )
    ty, tx = curve(phis)
    gap = np.hypot(np.diff(ty), np.diff(tx)).min() if n_teeth > 1 else 20 * u
    crest = zb + hz * 0.82
    teeth = []
    metal_tooth = int(rng.integers(n_teeth)) if cfg.metal else -1
    for k in range(n_teeth):
        rc = min(rng.uniform(5.0, 6.2) * u, 0.47 * gap)
        rroot = rc * rng.uniform(0.55, 0.7)
        apex = zb - hz * rng.uniform(0.25, 0.55)
        hc = rng.uniform(0.10, 0.14) * lz
        zcrown = crest + 0.55 * hc
        c = (0.5 * (apex + zcrown + hc), float(ty[k]), float(tx[k]))
        half = (0.5 * (zcrown + hc - apex) + 1.0 * u, rc + 1.5 * u, rc + 1.5 * u)
        box = _box(c, half, cfg.spacing, cfg.shape)
        z, y, x = _coords(box, cfg.spacing)
        rho = np.sqrt((y - ty[k]) ** 2 + (x - tx[k]) ** 2)
        re = np.sqrt((rho / rc) ** 2 + ((z - zcrown) / hc) ** 2)
        crown = re < 1.0
        frac = np.clip((z - apex) / max(crest - apex, 1e-6), 0.0, 1.0)
        rr = rroot * (0.3 + 0.7 * frac**0.6)
        root = (z >= apex) & (z <= zcrown) & (rho < rr)
        tooth = crown | root
        pulp = (rho < 0.28 * rr) & (z > apex + 0.15 * (crest - apex)) & (z < zcrown)
        ligament = (z >= apex - 0.6 * u) & (z <= crest) & (rho < rr + 0.6 * u) & ~tooth
        sub_img, sub_lab = img[box], labels[box]
        in_bone = sub_lab == BONE
        sub_img[ligament & in_bone] = cfg.hu_ligament
        val = np.where(re > 0.78, np.float32(cfg.hu_enamel), np.float32(cfg.hu_dentin))
        val = np.where(crown, val, np.float32(cfg.hu_dentin))
        val = np.where(pulp, np.float32(cfg.hu_pulp), val)
        if k == metal_tooth:
            filling = (
                np.sqrt((rho / (0.55 * rc)) ** 2 + ((z - (zcrown + 0.6 * hc)) / (0.35 * hc)) ** 2)
                < 1
            )
            val = np.where(filling & tooth, np.float32(cfg.hu_metal), val)
        sub_img[tooth] = val[tooth]
        sub_lab[tooth] = TOOTH
        teeth.append((float(ty[k]), float(tx[k]), apex, zcrown + 0.6 * hc, rc))

    # ---- lesions: dark, irregular, multi-focal blobs near root apices, inside bone
    sites = (
        rng.choice(n_teeth, size=min(cfg.n_lesions, n_teeth), replace=False)
        if cfg.n_lesions
        else []
    )
    extra_sites = max(0, cfg.n_lesions - n_teeth)
    sites = list(sites) + list(rng.integers(0, n_teeth, size=extra_sites))
    for k in sites:
        py, px, apex, _, rc = teeth[int(k)]
        n_frag = int(rng.integers(1, cfg.max_lesion_fragments + 1))
        r0 = rng.uniform(*cfg.lesion_radius) * u
        centre = (
            np.array([apex - rng.uniform(0.0, 0.6) * r0, py, px])
            + np.r_[0.0, rng.normal(0, 0.6 * u, 2)]
        )
        centres = [centre]
        radii = [r0]
        for _ in range(n_frag - 1):
            r = rng.uniform(0.45, 0.8) * r0
            direction = rng.normal(size=3)
            direction[0] *= 0.5
            direction /= np.linalg.norm(direction) + 1e-9
            dist = r0 + r + rng.uniform(-0.3, 1.8) * u  # some touch, some stand apart
            centres.append(centre + direction * dist)
            radii.append(r)
        for cz_, r in zip(centres, radii, strict=True):
            axes = r * rng.uniform(0.75, 1.25, 3)
            box = _box(cz_, axes * 1.4, cfg.spacing, cfg.shape)
            if any(s.stop <= s.start for s in box):
                continue
            z, y, x = _coords(box, cfg.spacing)
            rn = np.sqrt(
                ((z - cz_[0]) / axes[0]) ** 2
                + ((y - cz_[1]) / axes[1]) ** 2
                + ((x - cz_[2]) / axes[2]) ** 2
            )
            rough = texture.block(box[0], box[1], box[2])
            blob = rn + 0.22 * rough < 1.0
            sub_img, sub_lab = img[box], labels[box]
            # inside the bone, one voxel away from its surface (a cyst inside the jaw)
            inner = ndimage.binary_erosion((sub_lab == BONE) | (sub_lab == LESION), border_value=1)
            blob &= inner & (sub_lab == BONE)
            # lesion keeps part of the bone texture: low contrast, not a flat hole
            base = cfg.hu_trabecular - cfg.lesion_contrast + 0.5 * cfg.texture_std * rough
            sub_img[blob] = base[blob]
            sub_lab[blob] = LESION

    # ---- artefacts: cupping, metal streaks (per slab), then blur and noise
    cy, cx = 0.5 * ly, 0.5 * lx
    rad = np.sqrt(((yy - cy) / (0.5 * ly)) ** 2 + ((xx - cx) / (0.5 * lx)) ** 2)
    fov = rad <= 1.0
    cup = (1.0 - cfg.cupping * np.clip(1.0 - rad**2, 0.0, 1.0)).astype(np.float32)
    streak2d = None
    if cfg.streaks and cfg.metal and metal_tooth >= 0:
        my, mx, _, mz, mrc = teeth[metal_tooth]
        theta = np.arctan2(yy - my, xx - mx)
        rho = np.sqrt((yy - my) ** 2 + (xx - mx) ** 2)
        n_streaks = int(rng.integers(8, 15))
        angles = rng.uniform(-math.pi, math.pi, n_streaks)
        amps = rng.uniform(0.4, 1.0, n_streaks) * np.where(rng.random(n_streaks) < 0.6, -1.0, 1.0)
        width = rng.uniform(0.03, 0.055)
        s = np.zeros_like(rho, dtype=np.float32)
        for a, amp in zip(angles, amps, strict=True):
            d = np.angle(np.exp(1j * (theta - a)))
            s += (amp * np.exp(-0.5 * (d / width) ** 2)).astype(np.float32)
        s *= np.exp(-rho / (0.6 * max(ly, lx))) * (rho > 0.6 * mrc)
        streak2d = (cfg.streak_strength * s).astype(np.float32)
        streak_z = (mz, 0.12 * lz + 2 * u)
    for z0 in range(0, nz, _SLAB):
        zs = slice(z0, min(nz, z0 + _SLAB))
        block = img[zs]
        block -= cfg.hu_air
        block *= cup[None]
        block += cfg.hu_air
        if streak2d is not None:
            zc = ((np.arange(zs.start, zs.stop) + 0.5) * sz).astype(np.float32)
            prof = np.exp(-0.5 * ((zc - streak_z[0]) / streak_z[1]) ** 2).astype(np.float32)
            block += prof[:, None, None] * streak2d[None]
    if cfg.blur_mm > 0:
        sigma = [cfg.blur_mm / s for s in cfg.spacing]
        ndimage.gaussian_filter(img, sigma=sigma, output=img, truncate=3.0)
    if cfg.noise_std > 0:
        for z0 in range(0, nz, _SLAB):
            zs = slice(z0, min(nz, z0 + _SLAB))
            block = img[zs]
            noise = rng.standard_normal(block.shape, dtype=np.float32)
            ndimage.gaussian_filter(noise, sigma=(0, 0.6, 0.6), output=noise)
            noise *= np.float32(1.0 / 0.47)  # restore unit std after the smoothing
            density = np.sqrt(np.clip((block - cfg.hu_air) / 1000.0, 0.0, 6.0))
            noise *= np.float32(cfg.noise_std) * (0.6 + 0.4 * density)
            block += noise
            block[:, ~fov] = cfg.hu_air
    else:
        img[:, ~fov] = cfg.hu_air
    volume = Volume(img, spacing=cfg.spacing, metadata={"phantom": asdict(cfg)})
    return volume, labels


# --------------------------------------------------------------------------- datasets
def choose_annotated_slices(labels: np.ndarray, n: int, axis: int = 0) -> list[int]:
    """``n`` slices spread through the foreground, one of them showing the rarest class.

    A person annotating a few slices picks them across the structure, and includes
    the pathology; so do we (evenly spaced quantiles of the foreground slices, then
    the slice with most of the rarest present class replaces the nearest pick).
    """
    other = tuple(a for a in range(3) if a != axis)
    fg = np.flatnonzero((labels > 0).any(axis=other))
    if fg.size == 0:
        fg = np.arange(labels.shape[axis])
    n = max(0, min(n, fg.size))
    if n == 0:
        return []
    picks = [int(fg[int((i + 0.5) * fg.size / n)]) for i in range(n)]
    present = [c for c in np.unique(labels) if c > 0]
    if present:
        counts = {int(c): int((labels == c).sum()) for c in present}
        rare = min(counts, key=lambda c: counts[c])
        per_slice = (labels == rare).sum(axis=other)
        if not any(per_slice[p] for p in picks):
            best = int(np.argmax(per_slice))
            nearest = int(np.argmin([abs(p - best) for p in picks]))
            picks[nearest] = best
    return sorted(set(picks))


def sparsify_labels(
    labels: np.ndarray, slices: list[int], axis: int = 0, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Keep ``slices`` (along ``axis``), set every other voxel to ``ignore_index``."""
    out = np.full(labels.shape, ignore_index, dtype=np.uint8)
    index = [slice(None)] * 3
    index[axis] = list(slices)
    out[tuple(index)] = labels[tuple(index)]
    return out


def make_phantom_dataset(
    folder: str | os.PathLike,
    n_cases: int,
    *,
    config: PhantomConfig | None = None,
    labelled_cases: int | list[int] | None = None,
    slices_per_case: int = 3,
    axis: int = 0,
    seed: int = 0,
    ignore_index: int = IGNORE_INDEX,
) -> Path:
    """Write an MSD-style folder of phantoms with sparse labels and full ground truth.

    Layout: ``imagesTr/phantom_XXX.nii.gz``; ``labelsTr/phantom_XXX.nii.gz`` for the
    labelled cases only (``slices_per_case`` slices along ``axis`` hold real classes,
    the rest ``ignore_index``); ``groundtruth/phantom_XXX.nii.gz`` (full labels of every
    case, for evaluation); ``dataset.json`` (nnU-Net-style class names).

    Parameters
    ----------
    labelled_cases : int or list of int, optional
        How many (the first ones) or which cases get sparse labels; default: half of
        them, at least one. The others are unlabelled (no label file).
    seed : int
        Case ``i`` is the phantom with seed ``seed + i`` (other fields from ``config``).
    """
    if n_cases < 1:
        raise InvalidVolumeError("make_phantom_dataset needs n_cases >= 1")
    if axis not in (0, 1, 2):
        raise InvalidVolumeError(f"axis must be 0, 1 or 2, got {axis}")
    base = config or PhantomConfig()
    if labelled_cases is None:
        labelled = set(range(max(1, n_cases // 2)))
    elif isinstance(labelled_cases, int):
        labelled = set(range(min(labelled_cases, n_cases)))
    else:
        labelled = {int(i) for i in labelled_cases}
    root = Path(folder)
    for sub in ("imagesTr", "labelsTr", "groundtruth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        name = f"phantom_{i:03d}"
        vol, lab = make_phantom(base, seed=seed + i)
        vol.metadata = {}
        write_volume(vol, root / "imagesTr" / f"{name}.nii.gz")
        write_labels(lab, vol, root / "groundtruth" / f"{name}.nii.gz")
        if i in labelled:
            picks = choose_annotated_slices(lab, slices_per_case, axis)
            write_labels(
                sparsify_labels(lab, picks, axis, ignore_index),
                vol,
                root / "labelsTr" / f"{name}.nii.gz",
            )
    meta = {
        "name": "napari-barl dental CBCT phantom",
        "channel_names": {"0": "CBCT"},
        "labels": {name: i for i, name in enumerate(PHANTOM_CLASSES)} | {"ignore": ignore_index},
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
        "labelled_cases": sorted(f"phantom_{i:03d}" for i in labelled if i < n_cases),
        "slices_per_case": slices_per_case,
        "axis": axis,
        "seed": seed,
    }
    with atomic_path(root / "dataset.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return root
