"""Patch sampling for training: normalised volumes in, labelled and unlabelled patches out.

Training uses annotated voxels for the supervised loss and *every* voxel (annotated or
not) for the unsupervised terms, which is why the :class:`PatchSampler` draws unlabelled
patches from labelled volumes too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from barl_core.data.dataset import Case
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.normalization import NormalizationConfig, NormStats, normalize, normalize_volume
from barl_core.data.padding import pad_image
from barl_core.errors import EmptyDatasetError, GeometryMismatchError, InvalidVolumeError

__all__ = ["TrainingVolume", "training_volumes", "PatchSampler"]


@dataclass
class TrainingVolume:
    """A normalised volume ready for sampling.

    Attributes
    ----------
    image : numpy.ndarray
        float32 ``(Z, Y, X)``, already normalised.
    labels : numpy.ndarray or None
        uint8 ``(Z, Y, X)`` with the ignore value on unannotated voxels, or None.
    name : str
    """

    image: np.ndarray
    labels: np.ndarray | None
    name: str = ""

    def __post_init__(self) -> None:
        """Refuse a non-3D image or labels on another grid."""
        if np.asarray(self.image).ndim != 3:
            raise InvalidVolumeError(f"{self.name or 'volume'}: expected a 3D image")
        if self.labels is not None and tuple(self.labels.shape) != tuple(self.image.shape):
            raise GeometryMismatchError(
                f"{self.name or 'volume'}: labels {tuple(self.labels.shape)} vs image "
                f"{tuple(self.image.shape)}"
            )


def training_volumes(
    cases: list[Case], cfg: NormalizationConfig | None = None, stats: NormStats | None = None
) -> list[TrainingVolume]:
    """Normalise each case (per volume, or with fixed ``stats``) for the sampler."""
    out = []
    for case in cases:
        img = (
            normalize(case.image.array, stats)
            if stats
            else normalize_volume(case.image.array, cfg)[0]
        )
        labels = None
        if case.labels is not None and (case.labels != case.ignore_index).any():
            labels = case.labels.astype(np.uint8, copy=False)
        out.append(TrainingVolume(img, labels, case.name))
    return out


class _VoxelPicker:
    """Draws uniformly among the True voxels of a mask without storing huge index lists.

    Few voxels (sparse slices, small lesions): their flat indices are kept. Many: draw
    in the mask's bounding box and keep hits (rejection), which stays fast because the
    mask then fills a sizeable part of its box.
    """

    _MAX_STORED = 1 << 22

    def __init__(self, mask: np.ndarray):
        self.shape = mask.shape
        self.count = int(mask.sum())
        self.indices: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        if self.count == 0:
            return
        if self.count <= self._MAX_STORED:
            self.indices = np.flatnonzero(mask)
        else:
            self.mask = mask
            nz = [
                np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
                for ax in range(3)
            ]
            self.lo = np.array([n[0] for n in nz])
            self.hi = np.array([n[-1] + 1 for n in nz])

    def pick(self, rng: np.random.Generator) -> tuple[int, int, int]:
        if self.indices is not None:
            flat = self.indices[rng.integers(self.indices.size)]
            return tuple(int(v) for v in np.unravel_index(flat, self.shape))  # type: ignore[return-value]
        assert self.mask is not None
        while True:
            cand = rng.integers(self.lo, self.hi, size=(1024, 3))
            hit = self.mask[cand[:, 0], cand[:, 1], cand[:, 2]]
            if hit.any():
                return tuple(int(v) for v in cand[np.argmax(hit)])  # type: ignore[return-value]


class PatchSampler:
    """Random patches for semi-supervised training.

    Labelled patches contain an annotated voxel (chosen at random, placed at a random
    position in the central half of the patch), so a volume with three labelled slices
    yields patches that contain one of those slices. With probability
    ``foreground_fraction`` the voxel is drawn from a random *foreground* class present
    in the annotations (small lesions would otherwise be seen rarely). Unlabelled
    patches come from anywhere in any volume, labelled ones included (their
    unannotated voxels are unlabelled data). Volumes smaller than the patch are padded
    (centred) as the sliding window pads them at prediction: the image by
    :func:`~barl_core.data.padding.pad_image` (edge values), the labels with the ignore
    value (padded voxels are not annotated).

    Parameters
    ----------
    volumes : list of TrainingVolume
    patch_size : tuple of int
        ``(z, y, x)``.
    rng : numpy.random.Generator or int
    ignore_index : int
    foreground_fraction : float
        Probability that a labelled patch is centred on a non-background class.
    """

    def __init__(
        self,
        volumes: list[TrainingVolume],
        patch_size: tuple[int, int, int],
        rng: np.random.Generator | int | None = None,
        ignore_index: int = IGNORE_INDEX,
        *,
        foreground_fraction: float = 0.33,
    ):
        if not volumes:
            raise EmptyDatasetError("the patch sampler needs at least one volume")
        ps = tuple(int(p) for p in patch_size)
        if len(ps) != 3 or min(ps) < 1:
            raise InvalidVolumeError(
                f"patch size must be three positive integers, got {patch_size}"
            )
        self.patch_size: tuple[int, int, int] = ps  # type: ignore[assignment]
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.ignore_index = int(ignore_index)
        self.foreground_fraction = float(foreground_fraction)
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray | None] = []
        self.names: list[str] = []
        self._annotated: list[tuple[int, _VoxelPicker, list[_VoxelPicker]]] = []
        for i, vol in enumerate(volumes):
            img, lab = self._pad(np.asarray(vol.image, dtype=np.float32), vol.labels)
            self.images.append(img)
            self.labels.append(lab)
            self.names.append(vol.name)
            if lab is None:
                continue
            annotated = lab != self.ignore_index
            if not annotated.any():
                continue
            classes = [int(c) for c in np.unique(lab[annotated]) if c != 0]
            fg = [_VoxelPicker(lab == c) for c in classes]
            self._annotated.append((i, _VoxelPicker(annotated), fg))

    def _pad(self, img: np.ndarray, lab: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        short = [max(0, p - s) for p, s in zip(self.patch_size, img.shape, strict=True)]
        if not any(short):
            return img, lab
        # centred, as the sliding window centres a volume in its padded grid
        widths = [(d // 2, d - d // 2) for d in short]
        img = pad_image(img, widths)
        if lab is not None:
            lab = np.pad(lab, widths, mode="constant", constant_values=self.ignore_index)
        return img, lab

    @property
    def n_labelled_volumes(self) -> int:
        """Volumes with at least one annotated voxel."""
        return len(self._annotated)

    def _corner_around(self, center: tuple[int, int, int], shape: tuple[int, ...]) -> list[int]:
        corner = []
        for c, p, s in zip(center, self.patch_size, shape, strict=True):
            # the chosen voxel lands at a random offset in the central half of the patch
            lo_off, hi_off = p // 4, p - 1 - p // 4
            off = int(self.rng.integers(lo_off, hi_off + 1)) if hi_off >= lo_off else p // 2
            corner.append(int(np.clip(c - off, 0, s - p)))
        return corner

    def _crop(self, arr: np.ndarray, corner: list[int]) -> np.ndarray:
        z, y, x = corner
        pz, py, px = self.patch_size
        return arr[z : z + pz, y : y + py, x : x + px]

    def sample_labelled(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches around annotated voxels.

        Returns
        -------
        images : float32 array ``[n, 1, *patch]``
        labels : int64 array ``[n, *patch]`` (ignore value on unannotated voxels)

        Raises
        ------
        EmptyDatasetError
            No volume holds an annotated voxel.
        """
        if not self._annotated:
            raise EmptyDatasetError(
                "no annotated voxel in the training set: label a few slices first"
            )
        images = np.empty((n, 1, *self.patch_size), dtype=np.float32)
        labels = np.empty((n, *self.patch_size), dtype=np.int64)
        for k in range(n):
            i, any_picker, fg = self._annotated[int(self.rng.integers(len(self._annotated)))]
            picker = any_picker
            if fg and self.rng.random() < self.foreground_fraction:
                picker = fg[int(self.rng.integers(len(fg)))]
            center = picker.pick(self.rng)
            corner = self._corner_around(center, self.images[i].shape)
            images[k, 0] = self._crop(self.images[i], corner)
            labels[k] = self._crop(self.labels[i], corner)  # type: ignore[arg-type]
        return images, labels

    def sample_unlabelled(self, n: int) -> np.ndarray:
        """``n`` patches from anywhere in any volume: float32 ``[n, 1, *patch]``."""
        images = np.empty((n, 1, *self.patch_size), dtype=np.float32)
        for k in range(n):
            i = int(self.rng.integers(len(self.images)))
            shape = self.images[i].shape
            corner = [
                int(self.rng.integers(0, s - p + 1))
                for s, p in zip(shape, self.patch_size, strict=True)
            ]
            images[k, 0] = self._crop(self.images[i], corner)
        return images
