"""The data a label-efficiency run reads: cases with full truth, the split, class names.

Why apart: the Left Atrium h5 set and MSD folders end in the same :class:`Dataset`, so the plan,
the runs and the tables never ask which one they have; ``active_learning.py`` loads its MSD
folder the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import common
from benchmarks.common import BenchCase

__all__ = ["Dataset", "KNOWN_CLASS_NAMES", "load_msd", "load_la"]


@dataclass
class Dataset:
    """Everything the plan needs: cases, split, class names, how distances are measured."""

    name: str
    cases: dict[str, BenchCase]
    test: list[str]
    pool: list[str]
    class_names: tuple[str, ...]
    voxel_units: bool = False
    pool_order: list[str] = field(default_factory=list)  # labelled = first N of this order


#: Class names of datasets whose folder carries no dataset.json naming them.
KNOWN_CLASS_NAMES = {"hippocampus": ("background", "anterior", "posterior")}


def load_msd(data_dir: Path, n_test: int) -> Dataset:
    """An MSD folder with *full* labels: ``labelsTr/``, or ``groundtruth/`` when present (the
    layout :func:`barl_core.data.phantom.make_phantom_dataset` writes, whose ``labelsTr`` is sparse).
    """
    truth_dir = data_dir / "groundtruth" if (data_dir / "groundtruth").is_dir() else data_dir / "labelsTr"
    cases = common.load_msd_cases(data_dir / "imagesTr", truth_dir)
    if len(cases) < 3:
        raise SystemExit(f"{data_dir}: needs at least 3 labelled cases, found {len(cases)}")
    split = common.make_split(cases, n_test=n_test)
    num_classes = int(max(int(c.truth.max()) for c in cases.values())) + 1
    pool = list(split.pool)
    class_names = _class_names(data_dir, num_classes)
    return Dataset(
        name=data_dir.name,
        cases=cases,
        test=list(split.test),
        pool=pool,
        class_names=class_names,
        pool_order=common.labelled_order(pool),
    )


def _class_names(data_dir: Path, num_classes: int) -> tuple[str, ...]:
    """From ``dataset.json`` (MSD ``{"0": "background"}`` or nnU-Net ``{"background": 0}``),
    a known dataset, or ``background, class_1, ...``.
    """
    import json

    from barl_core.training.config import default_class_names

    meta_path = data_dir / "dataset.json"
    if meta_path.is_file():
        labels = json.loads(meta_path.read_text()).get("labels", {})
        by_index: dict[int, str] = {}
        for k, v in labels.items():
            if str(k).isdigit():
                by_index[int(k)] = str(v)
            elif isinstance(v, int):
                by_index[v] = str(k)
        n = 0
        while n in by_index:
            n += 1
        if n >= num_classes:  # the file may name classes absent from these few cases
            return tuple(by_index[i] for i in range(n))
    known = KNOWN_CLASS_NAMES.get(data_dir.name)
    if known and len(known) == num_classes:
        return known
    return tuple(default_class_names(num_classes))


def load_la(root: Path) -> Dataset:
    from benchmarks.la_h5 import LA_CLASS_NAMES, load_la_cases

    cases, train, test = load_la_cases(root)
    return Dataset(
        name="LA2018-UAMT",
        cases=cases,
        test=test,
        pool=train,
        class_names=LA_CLASS_NAMES,
        voxel_units=True,
        pool_order=list(train),  # the literature labels the first N of train.list
    )
