"""Datasets with sparse labels: find the cases of a folder, check and load them.

On-disk layout (compatible with the Medical Segmentation Decathlon and nnU-Net)::

    dataset/
      imagesTr/NAME.nii.gz        or NAME_0000.nii.gz (any extension io reads)
      labelsTr/NAME.nii.gz        optional; a case without one is unlabelled

Inside a label map the **ignore value** (255 by default) marks voxels nobody
annotated. That is how a volume with a few labelled slices is stored: an annotated
slice holds real classes ``0..K-1`` on all its voxels, every other voxel is 255.
Normalisation lives in :mod:`barl_core.data.normalization`, the annotation status in
:mod:`barl_core.data.annotation`, patch sampling in :mod:`barl_core.data.sampler`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from barl_core.data.annotation import AnnotationStatus, annotation_status
from barl_core.data.case_names import case_name_from_file, channel_index, validate_case_name
from barl_core.data.discovery import volume_files
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import (
    EmptyDatasetError,
    InputFileError,
    InvalidVolumeError,
)
from barl_core.io.volume import (
    SUPPORTED_EXTENSIONS,
    Volume,
    check_label_values,
    check_same_grid,
    read_volume,
)

__all__ = [
    "Case",
    "CaseFiles",
    "find_cases",
    "load_dataset",
    "check_labels",
    "dataset_summary",
]


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
        """How much of this case is annotated (:func:`annotation_status`)."""
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
    # the one value rule (io.volume.check_label_values); without a class count, every
    # value below the ignore value may be a class
    limit = num_classes if num_classes is not None else ignore_index
    return check_label_values(labels, limit, ignore_index=ignore_index, what=where)


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
