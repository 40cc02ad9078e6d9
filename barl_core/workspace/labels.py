"""The sparse labels of a workspace's cases: load, save with provenance, mark, revert.

Part of :class:`~barl_core.workspace.layout.Workspace` (a mixin: the workspace class is
assembled from :class:`LabelStore`, :class:`~barl_core.workspace.predictions.PredictionStore`
and :class:`~barl_core.workspace.models.ModelStore`), split out because labels, predictions
and models change for different reasons. Every label-changing save records each changed
slice (:mod:`barl_core.workspace.provenance`).
"""

from __future__ import annotations

import numpy as np

from barl_core.data.labels import IGNORE_INDEX, annotated_slices
from barl_core.errors import GeometryMismatchError, InputFileError
from barl_core.io.volume import check_label_values, read_volume, write_labels
from barl_core.workspace.provenance import slice_dice

__all__ = ["LabelStore", "check_slice"]


def check_slice(z: int, n: int) -> int:
    """Return ``z`` as an int if it is a slice index of a volume of ``n`` slices, else raise."""
    z = int(z)
    if not 0 <= z < n:
        raise InputFileError(f"slice {z} is outside the volume (0..{n - 1})")
    return z


class LabelStore:
    """Labels of the cases (used as a part of :class:`~barl_core.workspace.layout.Workspace`)."""

    def load_labels(self, name: str) -> np.ndarray:
        """Return the case's sparse labels (uint8, 255 = not annotated); all 255 if none yet."""
        self.record(name)
        ref = self.reference(name)
        lp = self.label_path(name)
        if not lp.exists():
            return np.full(ref.shape, IGNORE_INDEX, dtype=np.uint8)
        vol = read_volume(lp)
        if vol.shape != ref.shape:
            raise GeometryMismatchError(
                f"{lp}: label grid {vol.shape} does not match its image {ref.shape}"
            )
        out = vol.array.astype(np.uint8, copy=False)
        self._label_cache[name] = out.copy()
        return out

    def _previous_labels(self, name: str) -> np.ndarray:
        if name not in self._label_cache:
            self._label_cache[name] = self.load_labels(name)
        return self._label_cache[name]

    def save_labels(
        self,
        name: str,
        labels: np.ndarray,
        *,
        how: dict[int, str] | None = None,
        model_version: str | None = None,
        proposals: dict[int, np.ndarray] | None = None,
        note: str = "",
    ) -> list[int]:
        """Write the sparse labels atomically; return the annotated slices (axis 0).

        An all-ignore map removes the label file, so that the case counts as
        unlabelled for training (the dataset loader sees no label file).

        Every slice that changed gets a provenance event and a history version
        (:mod:`barl_core.workspace.provenance`): ``how[z]`` when given (``accepted`` with
        ``proposals[z]``, ``reverted``...), otherwise classified from its past
        (``drawn``, ``edited-from-proposal`` with the Dice to the proposal, ``unmarked``).
        """
        self._check_writable()
        rec = self.record(name)
        ref = self.reference(name)
        labels = np.asarray(labels)
        if labels.shape != ref.shape:
            raise GeometryMismatchError(
                f"labels of shape {labels.shape} do not match case {name!r} of shape {ref.shape}"
            )
        # -1, 0.7 or NaN must not turn silently into 255 or 0 (issue 14)
        labels = check_label_values(
            labels, self.num_classes, ignore_index=IGNORE_INDEX,
            what=f"case {name!r} (classes 0..{self.num_classes - 1}: {', '.join(self.class_names)})",
        )
        previous = self._previous_labels(name)
        annotated = annotated_slices(labels)
        if annotated:
            write_labels(labels.astype(np.uint8, copy=False), ref, self.label_path(name))
        else:
            self.label_path(name).unlink(missing_ok=True)
        self._label_cache[name] = labels.astype(np.uint8, copy=True)
        self._record_changes(name, previous, labels, how or {}, model_version, proposals or {}, note)
        rec.annotated_slices = annotated
        rec.accepted_slices = [z for z in rec.accepted_slices if z in annotated]
        self._save_state()
        return annotated

    def _record_changes(self, name, previous, labels, how, model_version, proposals, note) -> None:
        flat_old = previous.reshape(previous.shape[0], -1)
        flat_new = labels.reshape(labels.shape[0], -1)
        changed = np.flatnonzero((flat_old != flat_new).any(axis=1))
        for z in (int(v) for v in changed):
            new = labels[z]
            if z in how:
                kind, proposal = how[z], proposals.get(z)
                dice = None if proposal is None else slice_dice(proposal, new, self.num_classes)
            else:
                kind, dice, proposal = self.provenance.classify(name, z, new, self.num_classes)
            self.provenance.record(name, z, new, kind, model_version=model_version,
                                   proposal=proposal, dice_to_proposal=dice, note=note)

    def revert_slice(self, name: str, z: int, version: int) -> list[int]:
        """Put slice ``z`` back as it was at history ``version`` (recorded as ``reverted``).

        The undo survives restarts: every version lives in ``history/``.
        """
        labels = self.load_labels(name)
        z = check_slice(z, labels.shape[0])
        labels[z] = self.provenance.load_version(name, z, version)
        proposal = self.provenance.load_proposal(name, z, version)
        rec = self.record(name)
        was_accepted = next(
            (e.how == "accepted" for e in self.provenance.events(name, z) if e.version == version),
            False,
        )
        slices = self.save_labels(name, labels, how={z: "reverted"}, note=f"reverted to v{version}",
                                  proposals={} if proposal is None else {z: proposal})
        rec.accepted_slices = [s for s in rec.accepted_slices if s != z]
        if was_accepted:
            self.tag_accepted(name, z)
        self._save_state()
        return slices

    def reject_proposal(self, name: str, z: int, model_version: str | None = None) -> None:
        """Remember that the human turned down the model's proposal on slice ``z``."""
        self.record(name)
        self.provenance.record(name, int(z), None, "rejected", model_version=model_version)

    def annotated_slices(self, name: str) -> list[int]:
        """Slices (axis 0) that hold labels, sorted."""
        return list(self.record(name).annotated_slices)

    def mark_slice(self, name: str, z: int, annotated: bool) -> list[int]:
        """Mark slice ``z`` as annotated (unpainted voxels become background) or not.

        Un-marking sets the whole slice back to the ignore value (the user's strokes
        on that slice are dropped, by intent: the slice no longer counts as labelled).
        """
        labels = self.load_labels(name)
        z = check_slice(z, labels.shape[0])
        sl = labels[z]
        if annotated:
            sl[sl == IGNORE_INDEX] = 0
        else:
            sl[...] = IGNORE_INDEX
        return self.save_labels(name, labels, how={z: "marked"} if annotated else None)

    def tag_accepted(self, name: str, z: int) -> None:
        """Remember that annotated slice ``z`` came from the model's proposal."""
        rec = self.record(name)
        if int(z) in rec.annotated_slices and int(z) not in rec.accepted_slices:
            rec.accepted_slices = sorted(rec.accepted_slices + [int(z)])
            self._save_state()

    def accepted_slices(self, name: str) -> list[int]:
        """Annotated slices taken from a prediction (not drawn from scratch)."""
        return list(self.record(name).accepted_slices)
