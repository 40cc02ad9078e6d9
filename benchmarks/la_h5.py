"""Left Atrium 2018 in the UA-MT h5 layout, and the literature's protocol preset.

The 3D semi-supervised segmentation literature (UA-MT, SASSNet, DTC, MC-Net, BCP, ...) reports
on the Left Atrium dataset as preprocessed by UA-MT: one folder per case holding
``mri_norm2.h5`` with datasets ``image`` (float32, already normalised) and ``label`` (uint8,
0/1), and two text files ``train.list`` (80 cases) and ``test.list`` (20 cases) naming the
case folders. UA-MT keeps the lists one level above the case folders
(``data/train.list`` beside ``data/2018LA_Seg_Training Set/<case>/mri_norm2.h5``); both that
and lists inside the case root are accepted.

Axis order: those h5 arrays are indexed ``(x, y, z)`` (the literature's patch 112x112x80 is
80 slices deep); napari-barl's arrays are ``(z, y, x)``, so the arrays are transposed on load
and the patch becomes ``(80, 112, 112)``. Distances are reported in voxels (unit spacing), as
the literature does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # run as a script (python benchmarks/la_h5.py) or imported as benchmarks.la_h5
    from benchmarks.common import BenchCase
except ModuleNotFoundError:  # pragma: no cover - executed as a loose script
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import BenchCase

__all__ = [
    "H5_NAME",
    "LA_CLASS_NAMES",
    "LALayout",
    "GpuProtocol",
    "GPU_PROTOCOL",
    "find_la_layout",
    "read_case_list",
    "load_la_case",
    "load_la_cases",
]

H5_NAME = "mri_norm2.h5"
LA_CLASS_NAMES = ("background", "left_atrium")
_CASE_SUBDIR = "2018LA_Seg_Training Set"


@dataclass(frozen=True)
class GpuProtocol:
    """The standard LA semi-supervised protocol (UA-MT and its successors).

    ``patch`` is in napari-barl's ``(z, y, x)`` order: the literature's 112x112x80
    ``(x, y, z)`` patch. ``base_channels=16`` matches V-Net's width; 6000 iterations of
    batch 2 labelled + 2 unlabelled is the usual schedule.
    """

    labelled: tuple[int, ...] = (8, 16)
    patch: tuple[int, int, int] = (80, 112, 112)
    base_channels: int = 16
    iterations: int = 6000
    batch_labeled: int = 2
    batch_unlabeled: int = 2
    device: str = "auto"


GPU_PROTOCOL = GpuProtocol()


@dataclass(frozen=True)
class LALayout:
    """Where the lists and the case folders of an LA dataset are."""

    train_list: Path
    test_list: Path
    case_root: Path

    def h5_path(self, entry: str) -> Path:
        """The h5 file of a list entry (a case folder name, or a path ending in ``.h5``)."""
        entry = entry.strip().strip("/")
        if entry.endswith(".h5"):
            p = Path(entry)
            return p if p.is_absolute() else self.case_root / p
        return self.case_root / entry / H5_NAME


def find_la_layout(root: str | os.PathLike) -> LALayout:
    """Locate ``train.list``, ``test.list`` and the case folders under or beside ``root``.

    Raises
    ------
    FileNotFoundError
        With the places searched, when the lists or the case folders are not found.
    """
    root = Path(root)
    list_dirs = [root, root.parent, root / "data"]
    lists = next((d for d in list_dirs if (d / "train.list").is_file() and (d / "test.list").is_file()), None)
    if lists is None:
        raise FileNotFoundError(
            f"{root}: no train.list/test.list found (looked in {', '.join(str(d) for d in list_dirs)})"
        )
    first = read_case_list(lists / "train.list")[:1]
    for case_root in (root, root / _CASE_SUBDIR, lists / _CASE_SUBDIR, lists):
        layout = LALayout(lists / "train.list", lists / "test.list", case_root)
        if not first or layout.h5_path(first[0]).is_file():
            return layout
    raise FileNotFoundError(
        f"{root}: the case folders named in {lists / 'train.list'} (each holding {H5_NAME}) were not found"
    )


def read_case_list(path: str | os.PathLike) -> list[str]:
    """Non-empty, stripped lines of a ``*.list`` file, in file order (order matters: the
    literature takes the *first* N training cases as the labelled ones).
    """
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]


def load_la_case(h5_path: str | os.PathLike, name: str | None = None) -> BenchCase:
    """Read one ``mri_norm2.h5`` into a :class:`BenchCase` with ``(z, y, x)`` arrays.

    The image keeps float32; labels become uint8 ``{0, 1}``; spacing is unit (voxels).
    """
    import h5py

    from barl_core.io.volume import Volume

    p = Path(h5_path)
    with h5py.File(p, "r") as fh:
        if "image" not in fh or "label" not in fh:
            raise KeyError(f"{p}: expected datasets 'image' and 'label', found {sorted(fh.keys())}")
        image = np.asarray(fh["image"][()], dtype=np.float32)
        label = np.asarray(fh["label"][()])
    if image.ndim != 3 or image.shape != label.shape:
        raise ValueError(f"{p}: image {image.shape} and label {label.shape} must be the same 3D shape")
    image_zyx = np.ascontiguousarray(image.transpose(2, 1, 0))
    label_zyx = np.ascontiguousarray((label.transpose(2, 1, 0) > 0).astype(np.uint8))
    case_name = name or p.parent.name
    return BenchCase(name=case_name, image=Volume(image_zyx, spacing=(1.0, 1.0, 1.0)), truth=label_zyx)


def load_la_cases(root: str | os.PathLike) -> tuple[dict[str, BenchCase], list[str], list[str]]:
    """All cases of an LA dataset: ``(cases, train_names, test_names)`` with list order kept."""
    layout = find_la_layout(root)
    train = read_case_list(layout.train_list)
    test = read_case_list(layout.test_list)
    cases: dict[str, BenchCase] = {}
    names: dict[str, list[str]] = {"train": [], "test": []}
    for which, entries in (("train", train), ("test", test)):
        for entry in entries:
            path = layout.h5_path(entry)
            name = _safe_name(entry)
            cases[name] = load_la_case(path, name=name)
            names[which].append(name)
    return cases, names["train"], names["test"]


def _safe_name(entry: str) -> str:
    """A file-name-safe case name from a list entry (folder names may hold spaces)."""
    base = entry.strip().strip("/")
    if base.endswith(".h5"):
        base = str(Path(base).parent)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in base) or "case"
