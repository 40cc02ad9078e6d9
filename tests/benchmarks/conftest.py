"""Fixtures shared by the benchmark tests: tiny phantoms in MSD layout, a tiny Left Atrium h5 set.

Benchmarks are not tests: nothing here asserts a timing or a Dice value. What is checked is
that each script runs end to end through ``barl_core``, writes a results JSON with the
machine, the split and every planned run, renders its table and plot, resumes, and that the
pieces that decide what the engine sees (split, sparse labels, LA h5 loader) are right.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TINY = (16, 24, 24)


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    """6 tiny phantoms in MSD layout, full labels under groundtruth/ (as make_phantom_dataset writes)."""
    from barl_core.data.phantom import PhantomConfig, make_phantom_dataset

    root = tmp_path_factory.mktemp("phantoms")
    return make_phantom_dataset(root / "phantoms", 6, config=PhantomConfig(shape=TINY), labelled_cases=6)


def _write_la(root: Path, n_train: int, n_test: int, shape_xyz=(24, 20, 16)) -> Path:
    """UA-MT layout: lists beside '2018LA_Seg_Training Set/<case>/mri_norm2.h5'."""
    import h5py

    cases_dir = root / "2018LA_Seg_Training Set"
    names = [f"CASE{i:02d}" for i in range(n_train + n_test)]
    rng = np.random.default_rng(1)
    for i, name in enumerate(names):
        (cases_dir / name).mkdir(parents=True)
        image = rng.normal(size=shape_xyz).astype(np.float32)
        label = np.zeros(shape_xyz, np.uint8)
        label[6:18, 5:15, 4:12] = 1
        image[label > 0] += 2.0
        image[0, 1, 2] = 100.0 + i  # a marker voxel at (x=0, y=1, z=2)
        with h5py.File(cases_dir / name / "mri_norm2.h5", "w") as fh:
            fh.create_dataset("image", data=image)
            fh.create_dataset("label", data=label)
    (root / "train.list").write_text("\n".join(names[:n_train]) + "\n")
    (root / "test.list").write_text("\n".join(names[n_train:]) + "\n\n")
    return cases_dir


@pytest.fixture(scope="session")
def write_la():
    """Factory: ``write_la(root, n_train, n_test)`` writes a tiny LA set in the UA-MT layout."""
    return _write_la
