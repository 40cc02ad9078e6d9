"""A frozen validation set of annotated slices, so that model versions can be compared fairly.

Why frozen: if the held-out slices were re-drawn at every retrain, a version's score would
change with the draw, not with the model, and the learning curve would be noise. Here each
annotated slice is assigned **once**, when it is first seen, and the assignment is stored in
``models/validation.json``; it never changes afterwards.

The rule (transparent and reproducible):

1. the first :data:`MIN_TRAIN` slices ever assigned (in case, slice order) are training
   slices, so that a model can be trained from the very first strokes;
2. after that a slice is a validation slice iff ``hash(case, z) < fraction`` (default 0.2),
   with ``hash`` the first 8 bytes of SHA-256 of ``"case:z"`` as a number in ``[0, 1)``;
3. while no slice is a validation slice yet, an update that adds slices past the first
   :data:`MIN_TRAIN` holds out the one with the smallest hash, so that a handful of slices
   already gives a validation score.

Training must not see validation slices: :func:`materialize_training_labels` writes a copy of
the workspace labels with those slices set to the ignore value (255), and that folder is what
the trainer reads. After training, :func:`evaluate` scores the prediction on them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from barl_core.data.labels import IGNORE_INDEX
from barl_core.io.volume import atomic_path, write_labels
from barl_core.workspace.provenance import slice_dice

__all__ = [
    "FrozenValidation",
    "slice_hash",
    "materialize_training_labels",
    "evaluate",
    "MIN_TRAIN",
    "VAL_FRACTION",
]

MIN_TRAIN = 4
VAL_FRACTION = 0.2


def slice_hash(case: str, z: int) -> float:
    """Return a stable pseudo-random number in ``[0, 1)`` for slice ``z`` of ``case``."""
    digest = hashlib.sha256(f"{case}:{int(z)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class FrozenValidation:
    """The persisted assignment of annotated slices to training or validation.

    Parameters
    ----------
    path : Path
        The JSON file (``models/validation.json`` in a workspace).
    fraction : float
        Share of slices (after the first :data:`MIN_TRAIN`) held out.
    """

    def __init__(
        self, path: str | Path, fraction: float = VAL_FRACTION, min_train: int = MIN_TRAIN
    ):
        self.path = Path(path)
        self.fraction, self.min_train = float(fraction), int(min_train)
        self.assigned: dict[str, dict[int, str]] = {}
        if self.path.exists():
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self.fraction = float(raw.get("fraction", self.fraction))
            self.min_train = int(raw.get("min_train", self.min_train))
            self.assigned = {
                c: {int(z): s for z, s in d.items()} for c, d in raw["assigned"].items()
            }

    def update(self, annotated: dict[str, list[int]]) -> list[tuple[str, int]]:
        """Assign slices seen for the first time; return the new validation slices.

        If the hash rule leaves no validation slice at all once more than ``min_train``
        slices are assigned, the newly seen slice (past the first ``min_train``) with the
        smallest hash is held out instead: with few slices the hash alone often picks none
        (7 slices: one chance in two), and versions then cannot be compared.
        """
        n_train = sum(s == "train" for d in self.assigned.values() for s in d.values())
        has_val = any(s == "val" for d in self.assigned.values() for s in d.values())
        new_val, eligible = [], []
        for case in sorted(annotated):
            done = self.assigned.setdefault(case, {})
            for z in sorted(int(v) for v in annotated[case]):
                if z in done:
                    continue
                if n_train < self.min_train:
                    done[z] = "train"
                    n_train += 1
                elif slice_hash(case, z) >= self.fraction:
                    done[z] = "train"
                    n_train += 1
                    eligible.append((case, z))
                else:
                    done[z] = "val"
                    new_val.append((case, z))
        if not has_val and not new_val and eligible:
            case, z = min(eligible, key=lambda cz: slice_hash(*cz))
            self.assigned[case][z] = "val"
            new_val.append((case, z))
        self.save()
        return new_val

    def validation_slices(
        self, annotated: dict[str, list[int]] | None = None
    ) -> dict[str, list[int]]:
        """Return validation slices per case (only those still annotated, when ``annotated`` is given)."""
        out = {}
        for case, d in self.assigned.items():
            zs = sorted(z for z, s in d.items() if s == "val")
            if annotated is not None:
                keep = set(annotated.get(case, []))
                zs = [z for z in zs if z in keep]
            if zs:
                out[case] = zs
        return out

    def save(self) -> None:
        """Write the assignment atomically (``models/validation.json``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": "napari-barl-validation",
            "fraction": self.fraction,
            "min_train": self.min_train,
            "rule": "first min_train slices train; then val iff sha256('case:z')[:8]/2^64 < fraction"
            " (if none is val yet, the new slice with the smallest hash)",
            "assigned": {
                c: {str(z): s for z, s in sorted(d.items())} for c, d in self.assigned.items()
            },
        }
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def materialize_training_labels(
    workspace, validation: FrozenValidation, out_dir: str | Path
) -> dict:
    """Write the training label folder: workspace labels with validation slices set to 255.

    Returns ``{case: [training slices]}``; cases left with no training slice get no
    label file (they count as unlabelled, still useful to the semi-supervised loss).
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    annotated = {c: workspace.annotated_slices(c) for c in workspace.cases}
    val = validation.validation_slices(annotated)
    train: dict[str, list[int]] = {}
    for case, zs in annotated.items():
        if not zs:
            continue
        labels = workspace.load_labels(case)
        labels[val.get(case, [])] = IGNORE_INDEX
        keep = [z for z in zs if z not in set(val.get(case, []))]
        if keep:
            write_labels(labels, workspace.reference(case), out / workspace.label_path(case).name)
            train[case] = keep
    return train


def evaluate(
    predictions: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    val_slices: dict[str, list[int]],
    class_names: list[str],
) -> dict | None:
    """Score predictions on the frozen validation slices.

    Returns ``{"mean_dice", "per_class", "n_slices", "slices"}``: ``mean_dice`` is the mean
    over slices of :func:`~barl_core.workspace.provenance.slice_dice` (foreground classes present);
    ``per_class`` pools all validation voxels per class. None when nothing can be scored.
    """
    from barl_core.evaluation.metrics import dice

    per_slice, pooled_p, pooled_t = [], [], []
    for case, zs in sorted(val_slices.items()):
        if case not in predictions or case not in labels:
            continue
        for z in zs:
            t = labels[case][z]
            p = predictions[case][z]
            per_slice.append(
                {"case": case, "z": int(z), "dice": slice_dice(p, t, len(class_names))}
            )
            pooled_p.append(p[t != IGNORE_INDEX])
            pooled_t.append(t[t != IGNORE_INDEX])
    if not per_slice:
        return None
    p, t = np.concatenate(pooled_p), np.concatenate(pooled_t)
    per_class = {
        name: float(dice(p == k, t == k))
        for k, name in enumerate(class_names)
        if k > 0 and ((p == k).any() or (t == k).any())
    }
    return {
        "mean_dice": float(np.mean([s["dice"] for s in per_slice])),
        "per_class": per_class,
        "n_slices": len(per_slice),
        "slices": per_slice,
    }
