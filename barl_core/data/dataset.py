"""Datasets with sparse labels, intensity normalisation and the patch sampler.

On-disk layout (compatible with the Medical Segmentation Decathlon and nnU-Net)::

    dataset/
      imagesTr/NAME.nii.gz        or NAME_0000.nii.gz (any extension io reads)
      labelsTr/NAME.nii.gz        optional; a case without one is unlabelled

Inside a label map the **ignore value** (255 by default) marks voxels nobody
annotated. That is how a volume with a few labelled slices is stored: an annotated
slice holds real classes ``0..K-1`` on all its voxels, every other voxel is 255.
Training uses annotated voxels for the supervised loss and *every* voxel (annotated
or not) for the unsupervised terms, which is why the :class:`PatchSampler` draws
unlabelled patches from labelled volumes too.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from barl_core.data.case_names import case_name_from_file, channel_index, validate_case_name
from barl_core.data.discovery import volume_files
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import (
    EmptyDatasetError,
    GeometryMismatchError,
    InputFileError,
    InvalidVolumeError,
    LabelValueError,
)
from barl_core.io.volume import (
    SUPPORTED_EXTENSIONS,
    Volume,
    all_finite,
    check_same_grid,
    label_dtype,
    read_volume,
)

__all__ = [
    "NORMALIZATION_MODES",
    "NormalizationConfig",
    "NormStats",
    "compute_norm_stats",
    "normalize",
    "normalize_volume",
    "Case",
    "CaseFiles",
    "AnnotationStatus",
    "annotation_status",
    "find_cases",
    "load_dataset",
    "check_labels",
    "dataset_summary",
    "TrainingVolume",
    "training_volumes",
    "PatchSampler",
]


#: ``percentile_zscore``: clip to percentiles, then z-score (CT/CBCT default: metal and
#: air outliers would otherwise dominate the mean and std); ``zscore``: no clipping;
#: ``minmax``: clip to percentiles and map to [0, 1]; ``none``: float32 cast only.
NORMALIZATION_MODES = ("percentile_zscore", "zscore", "minmax", "none")

#: Above this many voxels, statistics are computed on a regular subsample: a 512^3 volume
#: would otherwise spend seconds sorting 134 million values for two percentiles, and the
#: float64 copies of a 16M-voxel sample cost ~400 MiB at prediction time. 2M strided voxels
#: still put 10 000 of them below the 0.5th percentile.
_STATS_MAX_SAMPLES = 1 << 21
_EPS = 1e-8


# --------------------------------------------------------------------------- normalisation
@dataclass
class NormalizationConfig:
    """How intensities are normalised (per volume unless stats are fixed elsewhere).

    Parameters
    ----------
    lower_percentile, upper_percentile : float
        Clipping percentiles (0-100) for ``percentile_zscore`` and ``minmax``.
    mode : str
        One of :data:`NORMALIZATION_MODES`.
    """

    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    mode: str = "percentile_zscore"

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATION_MODES:
            raise InvalidVolumeError(
                f"unknown normalisation mode {self.mode!r} (use one of {', '.join(NORMALIZATION_MODES)})"
            )
        if not 0.0 <= self.lower_percentile < self.upper_percentile <= 100.0:
            raise InvalidVolumeError(
                "normalisation percentiles must satisfy 0 <= lower < upper <= 100, got "
                f"{self.lower_percentile}, {self.upper_percentile}"
            )


@dataclass
class NormStats:
    """The numbers :func:`normalize` needs; stored in checkpoints as a plain dict.

    ``lower``/``upper`` are the clipping bounds (used by ``percentile_zscore`` and
    ``minmax``), ``mean``/``std`` the z-score parameters (computed after clipping).
    """

    lower: float
    upper: float
    mean: float
    std: float
    mode: str = "percentile_zscore"

    def to_dict(self) -> dict:
        return {k: (v if isinstance(v, str) else float(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> NormStats:
        return cls(
            lower=float(d["lower"]),
            upper=float(d["upper"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            mode=str(d.get("mode", "percentile_zscore")),
        )


def _stats_sample(array: np.ndarray) -> np.ndarray:
    """A float64 *copy* of at most ``_STATS_MAX_SAMPLES`` regularly strided voxels.

    Always a copy, so :func:`compute_norm_stats` may work in place on it: its peak is one
    sample (16 MiB), never a volume-sized temporary.
    """
    a = np.asarray(array)
    step = max(1, int(np.ceil(a.size / _STATS_MAX_SAMPLES)))
    if a.flags.c_contiguous:
        flat = a.reshape(-1)[::step]
    else:  # a transposed view: stride each axis instead of flattening (which would copy it all)
        s = max(1, int(np.ceil(step ** (1.0 / max(a.ndim, 1)))))
        flat = a[(slice(None, None, s),) * a.ndim].reshape(-1)
    return np.array(flat, dtype=np.float64)


def compute_norm_stats(array: np.ndarray, cfg: NormalizationConfig | None = None) -> NormStats:
    """Statistics of one volume for :func:`normalize`.

    Raises
    ------
    InvalidVolumeError
        Empty array or NaN/Inf voxels (they would poison every statistic).
    """
    cfg = cfg or NormalizationConfig()
    sample = _stats_sample(array)
    if sample.size == 0:
        raise InvalidVolumeError("cannot normalise an empty volume")
    if not all_finite(array):  # the sample is part of the array
        raise InvalidVolumeError("volume holds NaN/Inf voxels; clean it before normalising")
    if cfg.mode in ("percentile_zscore", "minmax"):
        lower, upper = np.percentile(sample, [cfg.lower_percentile, cfg.upper_percentile],
                                     overwrite_input=True)
        np.clip(sample, lower, upper, out=sample)
    else:
        lower, upper = sample.min(), sample.max()
    if cfg.mode == "none":
        mean, std = 0.0, 1.0
    else:
        mean = float(sample.mean())
        sample -= mean
        np.square(sample, out=sample)
        std = float(np.sqrt(sample.mean()))
    return NormStats(float(lower), float(upper), float(mean), float(std), cfg.mode)


def normalize(array: np.ndarray, stats: NormStats) -> np.ndarray:
    """Apply ``stats`` to ``array``; returns a new float32 array.

    A constant volume (zero std or range) maps to zeros instead of dividing by zero.
    """
    out = np.asarray(array, dtype=np.float32).copy()
    mode = stats.mode
    if mode == "none":
        return out
    if mode in ("percentile_zscore", "minmax"):
        np.clip(out, stats.lower, stats.upper, out=out)
    if mode == "minmax":
        span = stats.upper - stats.lower
        out -= np.float32(stats.lower)
        if span > _EPS:
            out /= np.float32(span)
        else:
            out[...] = 0.0
        return out
    out -= np.float32(stats.mean)
    if stats.std > _EPS:
        out /= np.float32(stats.std)
    else:
        out[...] = 0.0
    return out


def normalize_volume(
    array: np.ndarray, cfg: NormalizationConfig | None = None
) -> tuple[np.ndarray, NormStats]:
    """Per-volume normalisation: stats of ``array`` itself, applied to it."""
    stats = compute_norm_stats(array, cfg)
    return normalize(array, stats), stats


# --------------------------------------------------------------------------- annotation status
@dataclass
class AnnotationStatus:
    """What part of a label map is annotated.

    Attributes
    ----------
    kind : str
        ``"labelled"`` (no ignore voxel), ``"partial"`` or ``"unlabelled"`` (no label
        map, or only ignore voxels).
    axis : int or None
        For ``partial``: the axis along which the annotated voxels form whole slices
        (0 preferred). If they form no whole slices (scribbles), the axis along which
        they touch the fewest slices, and ``whole_slices`` is False.
    slices : list of int
        For ``partial``: the slices (along ``axis``) holding annotated voxels.
    annotated_fraction : float
        Annotated voxels / all voxels.
    whole_slices : bool
        True when every listed slice is annotated on all of its voxels.
    """

    kind: str
    axis: int | None
    slices: list[int]
    annotated_fraction: float
    whole_slices: bool = True

    def describe(self) -> str:
        if self.kind != "partial":
            return self.kind
        what = "slices" if self.whole_slices else "slices (partly)"
        return f"partial: {len(self.slices)} {what} on axis {self.axis}: {_ranges(self.slices)}"


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (short for long slice lists)."""
    out: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def annotation_status(
    labels: np.ndarray | None, ignore_index: int = IGNORE_INDEX
) -> AnnotationStatus:
    """Classify a (sparse) label map as labelled, partial or unlabelled.

    Examples
    --------
    >>> lab = np.full((4, 5, 5), 255, np.uint8); lab[2] = 0
    >>> annotation_status(lab).slices
    [2]
    """
    if labels is None:
        return AnnotationStatus("unlabelled", None, [], 0.0)
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InvalidVolumeError(f"expected a 3D label map, got {labels.ndim}D")
    annotated = labels != ignore_index
    n = int(annotated.sum())
    if n == 0:
        return AnnotationStatus("unlabelled", None, [], 0.0)
    fraction = n / labels.size
    if n == labels.size:
        return AnnotationStatus("labelled", None, [], 1.0)
    per_axis = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = annotated.sum(axis=other)
        touched = np.flatnonzero(counts)
        slice_size = labels.size // labels.shape[axis]
        whole = bool((counts[touched] == slice_size).all())
        if whole:
            return AnnotationStatus("partial", axis, [int(i) for i in touched], fraction, True)
        per_axis.append(touched)
    axis = int(np.argmin([len(t) for t in per_axis]))
    return AnnotationStatus("partial", axis, [int(i) for i in per_axis[axis]], fraction, False)


# --------------------------------------------------------------------------- cases on disk
@dataclass
class CaseFiles:
    """A case's files, found but not read (cheap listing for ``barl info``)."""

    name: str
    image_path: Path
    label_path: Path | None


@dataclass
class Case:
    """One volume of a dataset with its (possibly sparse, possibly absent) labels."""

    name: str
    image: Volume
    labels: np.ndarray | None
    image_path: Path
    label_path: Path | None
    ignore_index: int = IGNORE_INDEX

    @property
    def status(self) -> AnnotationStatus:
        return annotation_status(self.labels, self.ignore_index)


def _resolve_dirs(images_dir: Path, labels_dir: Path | None) -> tuple[Path, Path | None]:
    if not images_dir.exists():
        raise InputFileError(f"{images_dir}: no such folder")
    if not images_dir.is_dir():
        raise InputFileError(f"{images_dir}: not a folder (expected a dataset or imagesTr folder)")
    if (images_dir / "imagesTr").is_dir():
        root = images_dir
        images_dir = root / "imagesTr"
        if labels_dir is None and (root / "labelsTr").is_dir():
            labels_dir = root / "labelsTr"
    elif labels_dir is None and images_dir.name == "imagesTr":
        sibling = images_dir.parent / "labelsTr"
        if sibling.is_dir():
            labels_dir = sibling
    if labels_dir is not None:
        if not labels_dir.exists():
            raise InputFileError(f"{labels_dir}: no such label folder")
        if not labels_dir.is_dir():
            raise InputFileError(f"{labels_dir}: not a folder")
    return images_dir, labels_dir


def find_cases(
    images_dir: str | os.PathLike, labels_dir: str | os.PathLike | None = None
) -> list[CaseFiles]:
    """List a dataset's cases without reading any voxel.

    ``images_dir`` may be the dataset root (holding ``imagesTr``/``labelsTr``) or the
    images folder itself; a sibling ``labelsTr`` is used when ``labels_dir`` is None.

    Raises
    ------
    InputFileError
        Missing folder, unsafe or duplicate case names, multi-channel cases.
    EmptyDatasetError
        No volume in the folder.
    """
    img_dir, lab_dir = _resolve_dirs(Path(images_dir), Path(labels_dir) if labels_dir else None)
    by_name: dict[str, Path] = {}
    for path in volume_files(img_dir):
        channel = channel_index(path.name)
        if channel is not None and channel != 0:
            raise InputFileError(
                f"{path}: multi-channel cases (_{channel:04d}) are not supported; "
                "keep one channel per case (NAME.nii.gz or NAME_0000.nii.gz)"
            )
        name = validate_case_name(case_name_from_file(path.name))
        if name in by_name:
            raise InputFileError(
                f"{img_dir}: case {name!r} has two image files ({by_name[name].name}, {path.name})"
            )
        by_name[name] = path
    if not by_name:
        raise EmptyDatasetError(
            f"{img_dir}: no volumes found (expected {', '.join(SUPPORTED_EXTENSIONS)} files)"
        )
    labels: dict[str, Path] = {}
    if lab_dir is not None:
        for path in volume_files(lab_dir):
            name = validate_case_name(case_name_from_file(path.name))
            if name in labels:
                raise InputFileError(
                    f"{lab_dir}: case {name!r} has two label files ({labels[name].name}, {path.name})"
                )
            labels[name] = path
        orphans = sorted(set(labels) - set(by_name))
        if orphans:
            warnings.warn(
                f"{lab_dir}: label files without an image are ignored: {', '.join(orphans[:5])}"
                + (" ..." if len(orphans) > 5 else ""),
                stacklevel=2,
            )
    return [CaseFiles(n, by_name[n], labels.get(n)) for n in sorted(by_name)]


def check_labels(
    labels: np.ndarray,
    *,
    num_classes: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    where: str = "label map",
) -> np.ndarray:
    """Validate a label map's values; return it as the smallest unsigned dtype.

    Float label maps with whole values (BraTS ships float32 labels) are accepted.

    Raises
    ------
    LabelValueError
        Non-integer, negative, or values other than ``0..num_classes-1`` and the ignore
        value (with ``num_classes=None``: any class must be below the ignore value).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise InvalidVolumeError(f"{where}: empty label map")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.isfinite(labels).all():
            raise LabelValueError(f"{where}: label maps must hold whole, finite numbers")
        if not np.array_equal(np.rint(labels), labels):
            raise LabelValueError(f"{where}: label maps must hold whole numbers, found fractions")
    lo, hi = labels.min(), labels.max()
    if lo < 0:
        raise LabelValueError(f"{where}: negative label value {int(lo)}")
    limit = num_classes if num_classes is not None else ignore_index
    if hi >= limit:
        bad = (labels >= limit) & (labels != ignore_index)
        if bad.any():
            values = sorted(int(v) for v in np.unique(labels[bad]))[:8]
            raise LabelValueError(
                f"{where}: label values {values} are outside the classes "
                f"(0..{limit - 1} and the ignore value {ignore_index})"
            )
    return labels.astype(label_dtype(int(hi)), copy=False)


def load_dataset(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
    num_classes: int | None = None,
) -> list[Case]:
    """Read and validate every case of an MSD-style folder.

    Raises
    ------
    InputFileError
        Missing/unreadable files, unsafe case names.
    InvalidVolumeError
        A volume that is not 3D or holds NaN/Inf.
    GeometryMismatchError
        A label map whose grid (shape, spacing, origin, direction) differs from its image.
    LabelValueError
        Label values outside ``0..num_classes-1`` other than ``ignore_index``.
    EmptyDatasetError
        No case at all.
    """
    cases = []
    for files in find_cases(images_dir, labels_dir):
        image = read_volume(files.image_path)
        labels = None
        if files.label_path is not None:
            lab = read_volume(files.label_path)
            check_same_grid(image, lab, what=f"label map of case {files.name!r}")
            labels = check_labels(
                lab.array,
                num_classes=num_classes,
                ignore_index=ignore_index,
                where=str(files.label_path),
            )
        cases.append(
            Case(files.name, image, labels, files.image_path, files.label_path, ignore_index)
        )
    return cases


def dataset_summary(cases: list[Case]) -> list[dict]:
    """One JSON-friendly row per case (what ``barl info`` prints for a dataset)."""
    rows = []
    for case in cases:
        st = case.status
        arr = case.image.array
        row = {
            "name": case.name,
            "shape": list(case.image.shape),
            "spacing": [round(float(s), 6) for s in case.image.spacing],
            "dtype": str(arr.dtype),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "status": st.kind,
            "axis": st.axis,
            "slices": list(st.slices),
            "whole_slices": st.whole_slices,
            "annotated_fraction": round(float(st.annotated_fraction), 6),
            "label_values": {},
        }
        if case.labels is not None:
            values, counts = np.unique(case.labels, return_counts=True)
            row["label_values"] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- patch sampling
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
    unannotated voxels are unlabelled data). Volumes smaller than the patch are padded:
    the image with its minimum, the labels with the ignore value.

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
        widths = [(d // 2, d - d // 2) for d in short]
        fill = float(img.min()) if img.size else 0.0
        img = np.pad(img, widths, mode="constant", constant_values=fill)
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
