"""The session's review use-cases (barl_core.workspace.session_review) before any prediction."""

from __future__ import annotations

import pytest

from barl_core.errors import BarlError, InputFileError
from barl_core.workspace.session import Session

CLASSES = ["background", "bone", "tooth", "lesion"]


def test_proposals_need_a_prediction(tmp_path, phantom):
    volume, truth = phantom
    s = Session.open(tmp_path / "ws", CLASSES)
    case = s.add_volume(volume, "a")
    assert s.proposal(case, 0.9) is None and s.suggest_slices(case) == []
    with pytest.raises(InputFileError, match="predict"):
        s.accept_proposal(case, 3)
    with pytest.raises(InputFileError, match="predict"):
        s.reject_proposal(case, 3)
    with pytest.raises(BarlError, match="no trained model"):
        s.start_prediction([case])
    with pytest.raises(BarlError, match="fine-tune"):
        s.annotate_slice(case, 4, truth[4])
        s.start_training(None, fine_tune=True)
