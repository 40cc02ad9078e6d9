"""Agreement-gated proposals: gating and filling an accepted slice."""

from __future__ import annotations

import numpy as np

from barl_core.active.proposals import NEEDS_HUMAN, fill_proposal, gate, proposal_for_slice


def test_gate_and_fill():
    pred = np.array([[[1, 2], [0, 1]]], np.uint8)
    conf = np.array([[[0.95, 0.5], [0.99, 0.9]]], np.float16)
    g = gate(pred, conf, 0.9)
    np.testing.assert_array_equal(g, [[[1, NEEDS_HUMAN], [0, 1]]])
    assert (gate(pred, conf, 0.9, skip_slices=[0]) == NEEDS_HUMAN).all()
    sp = proposal_for_slice(pred, conf, 0, 0.96)
    assert sp.coverage == 0.25
    np.testing.assert_array_equal(fill_proposal(sp.proposal, pred[0], 3), pred[0])
