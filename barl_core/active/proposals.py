"""Agreement-gated proposals: a mask the model offers only where both branches agree and are sure.

A proposal on an unannotated slice holds the predicted class where the agreement confidence
(:mod:`barl_core.inference.agreement`: both branches' argmax equal, both probabilities of that class
at least ``threshold``) is high enough, and :data:`NEEDS_HUMAN` elsewhere: the voxels a
human has to look at. Annotated slices get no proposal (the human already decided), nor do
slices whose proposal was rejected.

Accepting a proposal makes the slice annotated: confident voxels take the proposal, the
"needs a human" voxels take the prediction's best guess (a slice is either annotated or not;
a partially ignored slice would silently turn into background on the next save). The event
is recorded as ``accepted`` with the proposal kept in the slice history, so a later edit is
recorded as ``edited-from-proposal`` with the Dice between proposal and final.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from barl_core.data.labels import IGNORE_INDEX

__all__ = [
    "NEEDS_HUMAN",
    "DEFAULT_THRESHOLD",
    "gate",
    "SliceProposal",
    "proposal_for_slice",
    "fill_proposal",
]

#: Value of "needs a human" voxels in a proposal (the ignore value: nobody decided yet).
NEEDS_HUMAN = IGNORE_INDEX
DEFAULT_THRESHOLD = 0.9


def gate(
    prediction: np.ndarray,
    confidence: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    skip_slices: Iterable[int] = (),
) -> np.ndarray:
    """Proposal volume: predicted class where ``confidence >= threshold``, else :data:`NEEDS_HUMAN`.

    Slices in ``skip_slices`` (annotated or rejected ones) get no proposal at all: they are
    entirely :data:`NEEDS_HUMAN` and the GUI hides the proposal there.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    prediction = np.asarray(prediction)
    confidence = np.asarray(confidence)
    if prediction.shape != confidence.shape:
        raise ValueError(f"prediction {prediction.shape} and confidence {confidence.shape} differ")
    out = np.where(confidence >= np.float16(threshold), prediction, NEEDS_HUMAN).astype(np.uint8)
    for z in skip_slices:
        if 0 <= int(z) < out.shape[0]:
            out[int(z)] = NEEDS_HUMAN
    return out


@dataclass
class SliceProposal:
    """The proposal of one slice and how much of it is confident."""

    z: int
    proposal: np.ndarray
    coverage: float

    @property
    def needs_human(self) -> np.ndarray:
        """Voxels the proposal leaves to the user (below the agreement threshold)."""
        return self.proposal == NEEDS_HUMAN


def proposal_for_slice(
    prediction: np.ndarray, confidence: np.ndarray, z: int, threshold: float = DEFAULT_THRESHOLD
) -> SliceProposal:
    """Gate one slice (``prediction``/``confidence`` are volumes)."""
    prop = gate(prediction[int(z)][None], confidence[int(z)][None], threshold)[0]
    return SliceProposal(int(z), prop, float(np.mean(prop != NEEDS_HUMAN)))


def fill_proposal(proposal: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels for an accepted slice: the proposal, and the prediction where it needs a human."""
    out = np.where(proposal == NEEDS_HUMAN, prediction, proposal)
    return np.clip(out, 0, num_classes - 1).astype(np.uint8)
