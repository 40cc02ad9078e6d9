"""The fixed split, the nested labelled budgets and the sparse (slice) labels of every benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import common


def test_split_is_fixed_disjoint_and_budgets_nest():
    names = [f"case_{i:03d}" for i in range(50)]
    a = common.make_split(names, n_test=10)
    b = common.make_split(list(reversed(names)), n_test=10)
    assert a == b  # independent of listing order
    assert len(a.test) == 10 and len(a.pool) == 40
    assert not set(a.test) & set(a.pool) and set(a.test) | set(a.pool) == set(names)
    assert common.make_split(names, 10, seed=1).test != a.test  # the seed matters
    five, ten = common.choose_labelled(a.pool, 0.05), common.choose_labelled(a.pool, 0.1)
    assert len(five) == 2 and len(ten) == 4 and set(five) <= set(ten)
    with pytest.raises(ValueError):
        common.make_split(names, n_test=50)


def test_sparse_labels_keep_only_foreground_slices():
    truth = np.zeros((20, 8, 8), np.uint8)
    truth[5:15, 2:6, 2:6] = 1
    truth[9, 3, 3] = 2
    slices = common.foreground_slices(truth, 3)
    assert len(slices) == 3 and all(5 <= s < 15 for s in slices)
    assert common.foreground_slices(truth, 1) == [10]
    sparse = common.sparsify(truth, slices)
    for z in range(20):
        if z in slices:
            np.testing.assert_array_equal(sparse[z], truth[z])
        else:
            assert (sparse[z] == common.IGNORE_INDEX).all()
