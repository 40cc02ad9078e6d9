"""The training folder a benchmark writes holds no labels of the unlabelled cases."""

from __future__ import annotations

import numpy as np

from benchmarks import common


def test_materialise_hides_unlabelled_cases(tmp_path):
    from barl_core.data.dataset import load_dataset
    from barl_core.io.volume import Volume

    rng = np.random.default_rng(0)
    cases, labels = {}, {}
    for i in range(3):
        truth = (rng.random((8, 8, 8)) > 0.5).astype(np.uint8)
        cases[f"c{i}"] = common.BenchCase(f"c{i}", Volume(rng.random((8, 8, 8)).astype(np.float32)), truth)
    labels["c0"] = common.sparsify(cases["c0"].truth, [2])
    labels["c1"] = cases["c1"].truth
    img_dir, lab_dir = common.materialise(cases, labels, tmp_path / "d")
    loaded = {c.name: c for c in load_dataset(img_dir, lab_dir)}
    assert loaded["c2"].labels is None
    np.testing.assert_array_equal(loaded["c0"].labels, labels["c0"])
    np.testing.assert_array_equal(loaded["c1"].labels, cases["c1"].truth)
