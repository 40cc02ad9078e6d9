"""Keep a case's napari Labels layer and its workspace label file in step.

Mapping (napari's label 0 is "empty", the engine's 255 is "not annotated"):
the layer holds class ids where the user painted and 0 elsewhere; a set of
annotated slices (axis 0) says which slices count. A slice joins the set when it
is painted (a ``paint`` event on it, or any non-zero voxel found when saving) or
marked; on save, slices outside the set become 255. Saving is debounced (a QTimer
restarted by each stroke) and atomic (the workspace writes a temporary file and
renames it), so a crash loses at most the last second of painting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from barl_core.errors import BarlError
from barl_core.workspace.layout import IGNORE_INDEX, Workspace

if TYPE_CHECKING:
    import napari

__all__ = ["LabelsSync", "layer_data_from_labels", "labels_from_layer_data"]

AUTOSAVE_MS = 1500


def layer_data_from_labels(labels: np.ndarray) -> np.ndarray:
    """Workspace labels (255 = not annotated) -> layer data (0 = empty)."""
    data = labels.astype(np.uint8, copy=True)
    data[data == IGNORE_INDEX] = 0
    return data


def labels_from_layer_data(data: np.ndarray, annotated: set[int]) -> np.ndarray:
    """Layer data + annotated slices -> workspace labels (255 off the annotated slices)."""
    out = np.asarray(data).astype(np.uint8, copy=True)
    keep = np.zeros(out.shape[0], dtype=bool)
    keep[[z for z in annotated if 0 <= z < out.shape[0]]] = True
    out[~keep] = IGNORE_INDEX
    return out


def _painted_slices(event) -> set[int]:
    """Axis-0 indices touched by a napari ``paint`` event (its history atoms)."""
    found: set[int] = set()
    for atom in getattr(event, "value", None) or []:
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
        self.dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        self.annotated |= _painted_slices(event)
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
        self.annotated |= {int(z) for z in np.flatnonzero((flat != 0).any(axis=1))}
        try:
            slices = self.workspace.save_labels(
                self.case, labels_from_layer_data(data, self.annotated), **provenance
            )
        except BarlError as exc:
            self.failed.emit(f"labels of {self.case!r} not saved: {exc}")
            return None
        self.dirty = False
        self.saved.emit(slices)
        return slices

    def mark(self, z: int, annotated: bool) -> list[int] | None:
        """Mark slice ``z`` annotated (unpainted = background) or clear it."""
        z = int(z)
        if not 0 <= z < self.layer.data.shape[0]:
            raise BarlError(f"slice {z} is outside the volume")
        if annotated:
            self.annotated.add(z)
        else:
            self.annotated.discard(z)
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
        self.dirty = True
        return self.flush(
            how={z: how} if how else None,
            proposals={z: proposal} if proposal is not None else None,
            model_version=model_version,
        )

    def reload_slice(self, z: int) -> None:
        """Show slice ``z`` as the workspace has it (after a revert done on disk)."""
        z = int(z)
        self.layer.data[z] = layer_data_from_labels(self.workspace.load_labels(self.case)[z])
        self.layer.refresh()
        self.annotated = set(self.workspace.annotated_slices(self.case))

    def detach(self) -> None:
        """Save what is pending and stop listening to the layer."""
        self.flush()
        try:
            self.layer.events.paint.disconnect(self._on_paint)
        except (TypeError, RuntimeError, ValueError):
            pass
