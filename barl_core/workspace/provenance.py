"""Label provenance and slice history: who made each annotated slice, how, and every earlier version.

Why: a reviewer must be able to tell a mask a radiologist drew from one the model proposed
and a human merely accepted, and a user must be able to go back to any earlier state of a
slice, even after napari was closed. On disk (inside the workspace)::

    provenance/<case>.json            {"slices": {"<z>": [event, ...]}}   (atomic rewrite)
    history/<case>/z0012_v3.npz       the slice as saved at version 3 (labels, proposal?)

An *event* is one change of a slice: ``how`` is one of :data:`HOW` (``drawn``,
``accepted`` (a model proposal accepted by a human), ``edited-from-proposal``,
``marked`` (all background), ``unmarked``, ``reverted``) or ``rejected`` (a proposal the
human turned down: no label change, no version). Label-changing events carry a version
number ``K`` (1, 2, ...) whose slice is kept in ``history/``; ``dice_to_proposal`` says how
much the human changed the model's proposal (1.0: accepted untouched).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError
from barl_core.io.volume import atomic_path

__all__ = ["SliceEvent", "ProvenanceStore", "slice_dice", "HOW"]

HOW = ("drawn", "accepted", "edited-from-proposal", "marked", "unmarked", "reverted", "rejected")


def slice_dice(a: np.ndarray, b: np.ndarray, num_classes: int | None = None) -> float:
    """Mean Dice over the foreground classes present in either slice (1.0 if none is).

    Voxels that are the ignore value in either slice are left out, so a proposal that
    left "needs a human" voxels open is compared only where it said something.
    """
    from barl_core.evaluation.metrics import dice

    a, b = np.asarray(a), np.asarray(b)
    valid = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    classes = set(np.unique(a[valid]).tolist()) | set(np.unique(b[valid]).tolist())
    classes.discard(0)
    if num_classes is not None:
        classes = {c for c in classes if c < num_classes}
    if not classes:
        return 1.0
    return float(np.mean([dice((a == c) & valid, (b == c) & valid) for c in sorted(classes)]))


@dataclass
class SliceEvent:
    """One change (or rejection) of one slice."""

    how: str
    time: float
    version: int | None = None
    model_version: str | None = None
    dice_to_proposal: float | None = None
    note: str = ""


class ProvenanceStore:
    """Provenance records and slice versions of a workspace (``folder`` = workspace root)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._cache: dict[str, dict[int, list[SliceEvent]]] = {}

    # ---------------------------------------------------------------- paths
    def _json(self, case: str) -> Path:
        return self.folder / "provenance" / f"{case}.json"

    def _version_path(self, case: str, z: int, version: int) -> Path:
        return self.folder / "history" / case / f"z{int(z):04d}_v{int(version)}.npz"

    # ---------------------------------------------------------------- read
    def _load(self, case: str) -> dict[int, list[SliceEvent]]:
        if case not in self._cache:
            path = self._json(case)
            data: dict[int, list[SliceEvent]] = {}
            if path.exists():
                try:
                    raw = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise InputFileError(f"{path}: unreadable provenance record: {exc}") from None
                for z, events in raw.get("slices", {}).items():
                    data[int(z)] = [SliceEvent(**e) for e in events]
            self._cache[case] = data
        return self._cache[case]

    def events(self, case: str, z: int) -> list[SliceEvent]:
        """All events of slice ``z``, oldest first."""
        return list(self._load(case).get(int(z), []))

    def slices(self, case: str) -> dict[int, list[SliceEvent]]:
        """Every slice with a record, ``{z: events}``."""
        return {z: list(ev) for z, ev in sorted(self._load(case).items())}

    def latest(self, case: str, z: int, *, labelled: bool = False) -> SliceEvent | None:
        """Return the newest event of slice ``z`` (with ``labelled``: the newest with a version)."""
        for ev in reversed(self.events(case, z)):
            if not labelled or ev.version is not None:
                return ev
        return None

    def versions(self, case: str, z: int) -> list[int]:
        """Return the history versions kept for slice ``z`` of ``case``, oldest first."""
        return [e.version for e in self.events(case, z) if e.version is not None]

    def load_version(self, case: str, z: int, version: int) -> np.ndarray:
        """Return the slice as saved at ``version`` (uint8, 255 = not annotated)."""
        path = self._version_path(case, z, version)
        if not path.exists():
            raise InputFileError(
                f"case {case!r} slice {z} has no version {version} "
                f"(versions: {self.versions(case, z) or 'none'})"
            )
        with np.load(path) as data:
            return data["labels"]

    def load_proposal(self, case: str, z: int, version: int) -> np.ndarray | None:
        """Return the model proposal saved with ``version`` of slice ``z``, if any."""
        path = self._version_path(case, z, version)
        if not path.exists():
            return None
        with np.load(path) as data:
            return data["proposal"] if "proposal" in data.files else None

    def rejected(self, case: str) -> set[int]:
        """Slices whose latest event is a rejected proposal."""
        return {z for z, ev in self._load(case).items() if ev and ev[-1].how == "rejected"}

    # ---------------------------------------------------------------- write
    def classify(self, case: str, z: int, new: np.ndarray, num_classes: int | None = None):
        """How a user edit of slice ``z`` came about: ``(how, dice_to_proposal, proposal)``.

        An edit of a slice whose last labelled version holds a proposal is
        ``edited-from-proposal``, with the Dice between the slice as it was accepted and
        the new slice; an all-ignore slice is ``unmarked``; anything else is ``drawn``.

        The Dice is taken against the accepted slice (the proposal, filled with the model's
        guess where it needed a human), not the bare proposal: the bare proposal is the
        ignore value where the model was unsure, and comparing only where it said
        something would score an edit of those voxels as no change at all.
        """
        new = np.asarray(new)
        if (new == IGNORE_INDEX).all():
            return "unmarked", None, None
        last = self.latest(case, z, labelled=True)
        if last is not None and last.how != "unmarked":
            proposal = self.load_proposal(case, z, last.version)
            if proposal is not None:
                reference = self._accepted_slice(case, z, proposal)
                return "edited-from-proposal", slice_dice(reference, new, num_classes), proposal
        return "drawn", None, None

    def _accepted_slice(self, case: str, z: int, proposal: np.ndarray) -> np.ndarray:
        """Return the slice as the human accepted it (latest ``accepted``/``reverted`` version)."""
        for ev in reversed(self.events(case, z)):
            if ev.version is not None and ev.how in ("accepted", "reverted"):
                if self.load_proposal(case, z, ev.version) is not None:
                    return self.load_version(case, z, ev.version)
        return proposal

    def record(
        self,
        case: str,
        z: int,
        labels: np.ndarray | None,
        how: str,
        *,
        model_version: str | None = None,
        proposal: np.ndarray | None = None,
        dice_to_proposal: float | None = None,
        note: str = "",
    ) -> SliceEvent:
        """Append an event; with ``labels`` also keep the slice as a new version."""
        if how not in HOW:
            raise ValueError(f"unknown provenance kind {how!r}; one of {HOW}")
        data = self._load(case)
        events = data.setdefault(int(z), [])
        version = None
        if labels is not None:
            version = max((e.version or 0 for e in events), default=0) + 1
            path = self._version_path(case, z, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"labels": np.asarray(labels, np.uint8)}
            if proposal is not None:
                arrays["proposal"] = np.asarray(proposal, np.uint8)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        event = SliceEvent(
            how,
            time.time(),
            version,
            model_version,
            None if dice_to_proposal is None else float(dice_to_proposal),
            note,
        )
        events.append(event)
        self._write(case)
        return event

    def _write(self, case: str) -> None:
        path = self._json(case)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": "napari-barl-provenance",
            "format_version": 1,
            "case": case,
            "slices": {
                str(z): [asdict(e) for e in ev] for z, ev in sorted(self._load(case).items())
            },
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def correction_dice(self, cases: list[str] | None = None) -> list[float]:
        """Dice between proposal and final for every slice edited or accepted from a proposal.

        Per slice, the *latest* value: an accepted slice never touched counts as 1.0.
        """
        out = []
        for case in cases if cases is not None else self._cases_on_disk():
            for _z, events in self._load(case).items():
                last = next((e for e in reversed(events) if e.version is not None), None)
                if last is None:
                    continue
                if last.how == "accepted" and last.dice_to_proposal is None:
                    out.append(1.0)
                elif last.dice_to_proposal is not None:
                    out.append(last.dice_to_proposal)
        return out

    def _cases_on_disk(self) -> list[str]:
        d = self.folder / "provenance"
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []

    def summary(self, case: str) -> dict[int, dict]:
        """Per annotated slice, its latest labelled event as a dict (for reports)."""
        out = {}
        for z, events in self.slices(case).items():
            last = next((e for e in reversed(events) if e.version is not None), None)
            if last is not None and last.how != "unmarked":
                out[z] = dict(asdict(last), n_versions=len(self.versions(case, z)))
        return out
