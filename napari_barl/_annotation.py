"""Keep a case's napari Labels layer and its workspace label file in step.

Mapping (napari's label 0 is "empty", the engine's 255 is "not annotated"):
the layer holds class ids where the user painted and 0 elsewhere; a set of
annotated slices (axis 0) says which slices count. Two paint modes decide what the
unpainted voxels of a painted slice mean:

- **full slice** (``"slice"``): the slice counts whole, unpainted voxels are background;
- **scribble** (``"scribble"``): only painted voxels count, the rest stays unknown (255).
  Background is then painted explicitly, with the layer value :data:`SCRIBBLE_BACKGROUND`.

A slice joins the set when it is painted or marked, and leaves it when its strokes are
all erased (unless it was marked: a marked empty slice is all background). Saving is
debounced (a QTimer restarted by each stroke) and atomic (the workspace writes a
temporary file and renames it), so a crash loses at most the last second of painting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import BarlError
from barl_core.workspace.layout import Workspace

if TYPE_CHECKING:
    import napari

__all__ = [
    "LabelsSync",
    "layer_data_from_labels",
    "labels_from_layer_data",
    "partial_slices",
    "SCRIBBLE_BACKGROUND",
    "MODES",
]

AUTOSAVE_MS = 1500
#: Layer value of background painted in scribble mode (0 would mean "unknown" there).
SCRIBBLE_BACKGROUND = 254
MODES = ("slice", "scribble")


def partial_slices(labels: np.ndarray) -> set[int]:
    """Slices holding both labels and unknown voxels (scribbled, axis 0)."""
    flat = np.asarray(labels).reshape(labels.shape[0], -1)
    unknown = flat == IGNORE_INDEX
    return {int(z) for z in np.flatnonzero(unknown.any(axis=1) & (~unknown).any(axis=1))}


def layer_data_from_labels(labels: np.ndarray) -> np.ndarray:
    """Workspace labels (255 = not annotated) -> layer data (0 = empty).

    On scribbled slices background shows as :data:`SCRIBBLE_BACKGROUND`, so that it stays
    distinct from the unknown voxels around it.
    """
    data = labels.astype(np.uint8, copy=True)
    for z in partial_slices(labels):
        data[z][data[z] == 0] = SCRIBBLE_BACKGROUND
    data[data == IGNORE_INDEX] = 0
    return data


def labels_from_layer_data(
    data: np.ndarray, annotated: set[int], partial: set[int] = frozenset()
) -> np.ndarray:
    """Layer data + annotated (and scribbled) slices -> workspace labels.

    Off the annotated slices everything is 255; on scribbled slices (``partial``) the
    unpainted voxels are 255 too; :data:`SCRIBBLE_BACKGROUND` is background everywhere.
    """
    out = np.asarray(data).astype(np.uint8, copy=True)
    keep = np.zeros(out.shape[0], dtype=bool)
    keep[[z for z in annotated if 0 <= z < out.shape[0]]] = True
    for z in partial:
        if 0 <= z < out.shape[0] and keep[z]:
            out[z][out[z] == 0] = IGNORE_INDEX
    out[out == SCRIBBLE_BACKGROUND] = 0
    out[~keep] = IGNORE_INDEX
    return out


def _painted_slices(event) -> set[int]:
    """Axis-0 indices touched by a napari ``paint`` event (its history atoms)."""
    found: set[int] = set()
    for atom in getattr(event, "value", None) or []:
        key = getattr(atom, "slice_key", None)  # napari >= 0.6: a box of slices per stroke
        if key is not None and isinstance(key[0], slice):
            start, stop, _step = key[0].indices(1 << 30)
            found.update(range(start, stop))
            continue
        indices = atom[0] if isinstance(atom, tuple | list) else getattr(atom, "indices", None)
        if indices is None:
            continue
        try:
            zs = np.asarray(indices[0]).ravel()
            if zs.size:
                found.update(int(z) for z in np.unique(zs))
        except (TypeError, IndexError, ValueError):
            continue
    return found


class LabelsSync(QObject):
    """Autosaving binding of one case's Labels layer to the workspace.

    Signals
    -------
    saved(list)
        The annotated slices after each successful save.
    failed(str)
        A save was refused (e.g. a label value that is not a class); the layer keeps
        the strokes so nothing is lost, and the next save retries.
    """

    saved = Signal(list)
    failed = Signal(str)

    def __init__(
        self,
        workspace: Workspace,
        case: str,
        layer: napari.layers.Labels,
        delay_ms: int = AUTOSAVE_MS,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.workspace, self.case, self.layer = workspace, case, layer
        self.annotated: set[int] = set(workspace.annotated_slices(case))
        labels = workspace.load_labels(case)
        self.partial: set[int] = partial_slices(labels)
        flat = labels.reshape(labels.shape[0], -1)
        # annotated but all background: marked by hand, kept even without strokes
        self.marked: set[int] = {z for z in self.annotated if not flat[z].any()}
        self.mode = "slice"
        self._touched: set[int] = set()
        self.dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        painted = _painted_slices(event)
        self._touched |= painted
        for z in painted:  # the mode a slice was last painted in decides what it means
            if self.mode == "scribble":
                self.partial.add(z)
            else:
                self.partial.discard(z)
        self.schedule()

    def schedule(self) -> None:
        """Save soon (restarts the debounce timer)."""
        self.dirty = True
        self._timer.start()

    def flush(self, **provenance) -> list[int] | None:
        """Save now if anything changed; return the annotated slices (None on failure).

        ``provenance`` (``how``, ``proposals``, ``model_version``, ``note``) goes to
        :meth:`barl_core.workspace.layout.Workspace.save_labels`, which records each changed slice.
        """
        self._timer.stop()
        if not self.dirty:
            return sorted(self.annotated)
        data = np.asarray(self.layer.data)
        flat = data.reshape(data.shape[0], -1)
        painted = {int(z) for z in np.flatnonzero((flat != 0).any(axis=1))}
        # strokes erased to nothing: the slice is no longer annotated (unless marked)
        self.annotated -= {z for z in self._touched if z not in painted and z not in self.marked}
        self.annotated |= painted
        self.partial &= self.annotated
        try:
            slices = self.workspace.save_labels(
                self.case, labels_from_layer_data(data, self.annotated, self.partial), **provenance
            )
        except BarlError as exc:
            self.failed.emit(f"labels of {self.case!r} not saved: {exc}")
            return None
        self.dirty = False
        self._touched.clear()
        self.saved.emit(slices)
        return slices

    def mark(self, z: int, annotated: bool) -> list[int] | None:
        """Mark slice ``z`` annotated (unpainted = background) or clear it."""
        z = int(z)
        if not 0 <= z < self.layer.data.shape[0]:
            raise BarlError(f"slice {z} is outside the volume")
        if annotated:  # the whole slice counts: unpainted voxels are background
            self.annotated.add(z)
            self.marked.add(z)
            self.partial.discard(z)
        else:
            self.annotated.discard(z)
            self.marked.discard(z)
            self.partial.discard(z)
            self.layer.data[z] = 0
            self.layer.refresh()
        self.dirty = True
        return self.flush(how={z: "marked"} if annotated else None)

    def set_slice(
        self,
        z: int,
        values: np.ndarray,
        *,
        how: str | None = None,
        proposal: np.ndarray | None = None,
        model_version: str | None = None,
    ) -> list[int] | None:
        """Replace slice ``z`` (e.g. with the prediction) and count it as annotated.

        ``how``/``proposal`` record where the values came from (e.g. ``accepted`` with the
        model's proposal), see :mod:`barl_core.workspace.provenance`.
        """
        z = int(z)
        self.layer.data[z] = values
        self.layer.refresh()
        self.annotated.add(z)
        self.marked.add(z)  # a whole slice from the model: kept even if all background
        self.partial.discard(z)
        self.dirty = True
        return self.flush(
            how={z: how} if how else None,
            proposals={z: proposal} if proposal is not None else None,
            model_version=model_version,
        )

    def set_slices(
        self, values: dict[int, np.ndarray], *, how: str, note: str = ""
    ) -> list[int] | None:
        """Replace several whole slices at once (e.g. an accepted fill) in one save.

        Each slice is recorded as ``how`` with its values as the proposal, so a later edit
        is ``edited-from-proposal`` with the Dice to what was accepted.
        """
        for z, sl in values.items():
            self.layer.data[int(z)] = sl
            self.annotated.add(int(z))
            self.marked.add(int(z))
            self.partial.discard(int(z))
        self.layer.refresh()
        self.dirty = True
        return self.flush(
            how={int(z): how for z in values},
            proposals={int(z): np.asarray(v) for z, v in values.items()},
            note=note,
        )

    def reload_slice(self, z: int) -> None:
        """Show slice ``z`` as the workspace has it (after a revert done on disk)."""
        z = int(z)
        labels = self.workspace.load_labels(self.case)
        self.layer.data[z] = layer_data_from_labels(labels[z][None])[0]
        self.layer.refresh()
        self.annotated = set(self.workspace.annotated_slices(self.case))
        self.partial = partial_slices(labels)

    def detach(self) -> None:
        """Save what is pending and stop listening to the layer."""
        self.flush()
        try:
            self.layer.events.paint.disconnect(self._on_paint)
        except (TypeError, RuntimeError, ValueError):
            pass
