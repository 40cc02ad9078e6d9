"""Label provenance and slice history: events, versions, revert, slice Dice."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.workspace.layout import Workspace
from barl_core.workspace.provenance import slice_dice


def test_provenance_history_survives_restart_and_reverts(ws1, tmp_path):
    lab = ws1.load_labels("c1")
    lab[3] = 0
    lab[3, 2:5, 2:5] = 1
    ws1.save_labels("c1", lab)  # drawn, v1
    lab[3, 2:5, 2:5] = 2
    ws1.save_labels("c1", lab)  # drawn again, v2
    ev = ws1.provenance.events("c1", 3)
    assert [e.how for e in ev] == ["drawn", "drawn"] and [e.version for e in ev] == [1, 2]
    # an accepted proposal, then edited: Dice between proposal and final is recorded
    prop = np.zeros((12, 14), np.uint8)
    prop[4:8, 4:8] = 1
    lab[6] = prop
    ws1.save_labels("c1", lab, how={6: "accepted"}, proposals={6: prop}, model_version="v1")
    ws1.tag_accepted("c1", 6)
    lab[6, 4:8, 6:8] = 0  # the human erases half
    ws1.save_labels("c1", lab)
    w2 = Workspace.open(tmp_path / "ws")
    last = w2.provenance.latest("c1", 6)
    assert last.how == "edited-from-proposal"
    assert last.dice_to_proposal == pytest.approx(2 * 8 / (16 + 8))
    assert w2.provenance.events("c1", 6)[0].model_version == "v1"
    # multi-level undo after the restart
    w2.revert_slice("c1", 3, 1)
    assert (w2.load_labels("c1")[3, 2:5, 2:5] == 1).all()
    assert w2.provenance.latest("c1", 3).how == "reverted"
    w2.revert_slice("c1", 6, 1)  # back to the accepted proposal: tagged accepted again
    assert w2.accepted_slices("c1") == [6]
    np.testing.assert_array_equal(w2.load_labels("c1")[6], prop)
    with pytest.raises(Exception, match="no version 9"):
        w2.revert_slice("c1", 3, 9)
    w2.mark_slice("c1", 3, False)
    assert w2.provenance.latest("c1", 3).how == "unmarked"
    assert w2.provenance.correction_dice(["c1"]) == [1.0]

def test_slice_dice():
    a = np.zeros((4, 4), np.uint8)
    assert slice_dice(a, a) == 1.0
    b = a.copy()
    b[:2] = 1
    assert slice_dice(a, b) == 0.0
    c = b.copy()
    c[0] = 255  # ignored voxels are left out
    assert slice_dice(b, c) == 1.0
