"""annotation_status: labelled, partial (which slices, along which axis) or unlabelled."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.annotation import annotation_status
from tests.barl_core.data.conftest import sparse_labels

# ---------------------------------------------------------------- annotation status

@pytest.mark.parametrize("axis", [0, 1, 2])
def test_partial_status_finds_slices_and_axis(axis):
    lab = sparse_labels(slices=(1, 4, 7), axis=axis)
    st = annotation_status(lab)
    assert st.kind == "partial"
    assert st.axis == axis
    assert st.slices == [1, 4, 7]
    assert st.whole_slices
    assert st.annotated_fraction == pytest.approx(3 / lab.shape[axis])

def test_status_labelled_unlabelled_and_scribbles():
    assert annotation_status(None).kind == "unlabelled"
    assert annotation_status(np.full((3, 4, 5), 255, np.uint8)).kind == "unlabelled"
    full = annotation_status(np.zeros((3, 4, 5), np.uint8))
    assert (full.kind, full.annotated_fraction) == ("labelled", 1.0)
    scribble = np.full((8, 9, 10), 255, np.uint8)
    scribble[5, 2:4, 1:6] = 1  # part of one axial slice
    st = annotation_status(scribble)
    assert st.kind == "partial" and not st.whole_slices
    assert st.axis == 0 and st.slices == [5]
    assert "partly" in st.describe()

def test_status_with_custom_ignore_value():
    lab = np.full((4, 4, 4), 99, np.uint8)
    lab[2] = 0
    assert annotation_status(lab, ignore_index=99).slices == [2]
    assert annotation_status(lab).kind == "labelled"


# ---------------------------------------------------------------- normalisation
