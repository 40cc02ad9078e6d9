"""From loaded cases to what the trainer samples from: working grid, normalisation, classes.

Kept apart from the loop because the planner, the benchmarks and the validation split need
the same prepared volumes without building a trainer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from barl_core.data.dataset import Case
from barl_core.data.labels import IGNORE_INDEX
from barl_core.data.normalization import NormStats, compute_norm_stats
from barl_core.data.resample import resample_volume
from barl_core.data.sampler import TrainingVolume, training_volumes
from barl_core.errors import EmptyDatasetError, TrainingError
from barl_core.training.config import TrainConfig, default_class_names

__all__ = ["prepare_training_data", "validation_volumes", "dataset_class_names"]


def prepare_training_data(
    cases: Sequence[Case], config: TrainConfig
) -> tuple[list[TrainingVolume], NormStats | None, tuple[str, ...]]:
    """Resample to the working spacing, normalise and find the class set.

    Parameters
    ----------
    cases : list of Case
        From :func:`~barl_core.data.dataset.load_dataset`.
    config : TrainConfig
        ``target_spacing``, ``normalization``, ``fixed_normalization``, ``class_names``,
        ``ignore_index``.

    Returns
    -------
    volumes : list of TrainingVolume
    stats : NormStats or None
        Dataset-wide statistics with ``fixed_normalization``; None for per-volume.
    class_names : tuple of str
        ``config.class_names``, or inferred ``("background", "class_1", ...)`` from the
        largest label value.

    Raises
    ------
    EmptyDatasetError
        No case, or not a single annotated voxel in any label map.
    TrainingError
        Labels hold values beyond the named classes.
    """
    if not cases:
        raise EmptyDatasetError("the training set holds no case")
    ignore = config.ignore_index
    work: list[Case] = []
    max_label = -1
    present: set[int] = set()
    for case in cases:
        case = working_grid(case, config)
        labels = case.labels
        if labels is not None:
            annotated = labels[labels != ignore]
            if annotated.size:
                max_label = max(max_label, int(annotated.max()))
                if config.class_names is None:
                    present.update(int(v) for v in np.unique(annotated))
        work.append(case)
    if max_label < 0:
        raise EmptyDatasetError(
            f"no annotated voxel in any of the {len(cases)} label map(s) (every voxel is the ignore "
            f"value {ignore} or there are no labels): label a few slices first"
        )
    if config.class_names is not None:
        names = tuple(config.class_names)
        if max_label >= len(names):
            raise TrainingError(
                f"labels hold class {max_label} but only {len(names)} classes are named ({', '.join(names)})"
            )
    else:
        missing = max_label + 1 - len(present)
        if missing > max(2, (max_label + 1) // 2):
            # e.g. values {0, 1, 254}: a stray value, not 255 classes (issue 14)
            raise TrainingError(
                f"labels hold value {max_label}, which would make a {max_label + 1}-class network, "
                f"but only {len(present)} values occur ({', '.join(map(str, sorted(present)[:8]))}); "
                f"name the classes with --classes, or fix the label maps (unannotated voxels are {ignore})"
            )
        names = default_class_names(max(2, max_label + 1))
    stats = None
    if config.fixed_normalization:
        sample = np.concatenate([c.image.array.reshape(-1)[:: max(1, c.image.array.size // 2_000_000)] for c in work])
        stats = compute_norm_stats(sample, config.normalization)
    volumes = training_volumes(work, config.normalization, stats)
    return volumes, stats, names


def working_grid(case: Case, config: TrainConfig) -> Case:
    """Return the case resampled to ``config.target_spacing`` (unchanged without one)."""
    if config.target_spacing is None:
        return case
    image = resample_volume(case.image, config.target_spacing)
    labels = case.labels
    if labels is not None:
        labels = resample_volume(
            case.image.with_array(labels), config.target_spacing, is_label=True, ignore_index=config.ignore_index
        ).array
    return replace(case, image=image, labels=labels)


def validation_volumes(
    cases: Sequence[Case], config: TrainConfig, stats: NormStats | None
) -> list[TrainingVolume]:
    """Return validation cases on the training grid, normalised as the training volumes were."""
    return training_volumes([working_grid(c, config) for c in cases], config.normalization, stats)


def dataset_class_names(images_dir: str | os.PathLike, ignore_index: int = IGNORE_INDEX) -> tuple[str, ...] | None:
    """Class names from an nnU-Net/MSD ``dataset.json`` beside the images, if any.

    Looks in ``images_dir`` and its parent for ``{"labels": {"background": 0, ...}}``;
    returns None when absent, unreadable, or not the classes ``0..K-1``.
    """
    folder = Path(images_dir)
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if not candidate.is_file():
            continue
        try:
            labels = json.loads(candidate.read_text(encoding="utf-8")).get("labels", {})
            by_value = {int(v): str(k) for k, v in labels.items() if int(v) != ignore_index}
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        if len(by_value) >= 2 and sorted(by_value) == list(range(len(by_value))):
            return tuple(by_value[i] for i in range(len(by_value)))
        return None
    return None
