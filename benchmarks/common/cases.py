"""Benchmark cases with their full truth, read from and written to MSD-layout folders.

Datasets are handed to the engine the way a user hands them: a temporary MSD-layout folder
(``imagesTr/`` + ``labelsTr/``) in which a labelled case has a label file (whole, or a few
axial slices with the rest set to the ignore value 255) and an unlabelled case has none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class BenchCase:
    """One case with its *complete* ground truth (the benchmark decides what the engine sees).

    Attributes
    ----------
    name : str
        Case name (file name without extension).
    image : barl_core.io.volume.Volume
        The image with its geometry.
    truth : numpy.ndarray
        Full label map ``(z, y, x)``, uint8, classes ``0..K-1``.
    image_path : Path or None
        Source file, linked instead of rewritten when the dataset is materialised.
    """

    name: str
    image: Any
    truth: np.ndarray
    image_path: Path | None = None


def load_msd_cases(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    *,
    names: Iterable[str] | None = None,
    num_classes: int | None = None,
) -> dict[str, BenchCase]:
    """Read an MSD folder pair through :func:`barl_core.data.dataset.load_dataset`.

    Every case must have a full label map (this is the benchmark's ground truth).
    """
    from barl_core.data.dataset import load_dataset

    cases = load_dataset(images_dir, labels_dir, num_classes=num_classes)
    wanted = set(names) if names is not None else None
    out: dict[str, BenchCase] = {}
    for case in cases:
        if wanted is not None and case.name not in wanted:
            continue
        if case.labels is None:
            raise ValueError(f"{case.name}: the benchmark needs the full label map")
        out[case.name] = BenchCase(
            name=case.name,
            image=case.image,
            truth=np.asarray(case.labels).astype(np.uint8),
            image_path=Path(case.image_path) if case.image_path else None,
        )
    return out


def materialise(
    cases: Mapping[str, BenchCase],
    labels: Mapping[str, np.ndarray | None],
    out_dir: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write an MSD-layout training folder the engine reads like a user's dataset.

    Parameters
    ----------
    cases : mapping
        All cases that take part (labelled and unlabelled).
    labels : mapping
        What the engine may see per case: a label map (full or sparse, 255 = ignore) or
        ``None``/absent for an unlabelled case (no label file is written).
    out_dir : path
        Folder that receives ``labelsTr/`` (and ``imagesTr/`` unless ``images_dir`` is given).
    images_dir : path, optional
        A shared images folder (filled once, reused by every run: only labels differ between
        runs). Images already there are not rewritten; real files are linked, not copied.

    Returns
    -------
    (images_dir, labels_dir)
    """
    from barl_core.io.volume import write_labels, write_volume

    out = Path(out_dir)
    img_dir = Path(images_dir) if images_dir is not None else out / "imagesTr"
    lab_dir = out / "labelsTr"
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.nii.gz" for name in cases}
    for extra in img_dir.glob("*.nii.gz"):  # a shared folder may hold cases of another run
        if extra.name not in wanted:
            raise ValueError(f"{img_dir} holds {extra.name}, which is not part of this run")
    for name, case in cases.items():
        target = img_dir / f"{name}.nii.gz"
        if not target.exists():
            src = case.image_path
            if src is not None and src.is_file() and src.name.endswith(".nii.gz"):
                os.symlink(src.resolve(), target)  # the real data is read-only; never copy it
            else:
                write_volume(case.image, target, compress=False)
        lab_path = lab_dir / f"{name}.nii.gz"
        lab = labels.get(name)
        if lab is None:
            lab_path.unlink(missing_ok=True)
        else:
            write_labels(np.asarray(lab, dtype=np.uint8), case.image, lab_path, compress=True)
    return img_dir, lab_dir
