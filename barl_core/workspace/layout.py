"""A labelling workspace: the cases a user works on, their sparse labels and models.

The napari widget is a thin view over this model, and scripts can drive it too.
On disk a workspace is an MSD-style folder, so the engine's dataset loader and the
``barl`` CLI read it directly::

    workspace/
      imagesTr/<case>.nii.gz          the volumes (source geometry kept)
      labelsTr/<case>.nii.gz          sparse labels: classes on annotated slices, 255 elsewhere
      predictions/<case>.nii.gz       the latest prediction (class map)
      predictions/<case>_disagreement.nii.gz
      predictions/<case>_confidence.npz   agreement confidence (float16) for proposals
      predictions/versions/<vid>/<case>.nii.gz  the prediction of each model version
      models/                         training runs (checkpoints), versions.json (the one model
                                      registry), validation.json
      provenance/<case>.json          how each slice was made (see barl_core.workspace.provenance)
      history/<case>/zNNNN_vK.npz     every saved version of every slice (undo across restarts)
      workspace.json                  class names, cases, prediction status, the current model

Why the label file is the source of truth: an annotated slice is exactly a slice of
``labelsTr/<case>`` without the ignore value, so a crash between writing the labels and
writing ``workspace.json`` cannot make the two disagree about what was annotated.
Every write (labels and JSON) is verified, then atomic (temporary file, read back, then
rename), and label values are checked before they are saved.

One process writes a workspace at a time: :meth:`Workspace.open` locks the folder
(``.barl.lock``, see :mod:`barl_core.runtime.lock`); a second process gets a
:class:`~barl_core.errors.LockedError` and may open it with ``read_only=True`` instead,
which reads everything and refuses every write.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from barl_core.data.case_names import sanitize_case_name, validate_case_name
from barl_core.data.discovery import volume_files
from barl_core.data.labels import IGNORE_INDEX, annotated_slices
from barl_core.errors import (
    BarlError,
    InputFileError,
    LabelValueError,
    LockedError,
)
from barl_core.inference.outputs import LABELS_EXTENSION
from barl_core.io.volume import (
    Volume,
    atomic_path,
    read_volume,
    remove_stale_temporaries,
    strip_extension,
    write_volume,
)
from barl_core.runtime.lock import FolderLock
from barl_core.workspace.labels import LabelStore
from barl_core.workspace.models import ModelStore
from barl_core.workspace.predictions import PredictionStore
from barl_core.workspace.provenance import ProvenanceStore

__all__ = [
    "Workspace",
    "CaseRecord",
    "WORKSPACE_FILE",
]

WORKSPACE_FILE = "workspace.json"
_FORMAT = "napari-barl-workspace"
_FORMAT_VERSION = 1
_EXT = LABELS_EXTENSION


@dataclass
class CaseRecord:
    """What ``workspace.json`` remembers about one case."""

    name: str
    annotated_slices: list[int] = field(default_factory=list)
    accepted_slices: list[int] = field(default_factory=list)
    predicted: bool = False
    disagreement_score: float | None = None
    prediction_model: str | None = None


class Workspace(LabelStore, PredictionStore, ModelStore):
    """A folder of cases with sparse labels, predictions and models.

    Use :meth:`create` or :meth:`open`; both return a ready workspace.

    Parameters
    ----------
    folder : Path
        The workspace folder (holds ``workspace.json``).
    class_names : list of str
        Class names, index = label value; ``class_names[0]`` is the background.
    """

    def __init__(self, folder: Path, class_names: list[str], *, read_only: bool = False):
        self.folder = Path(folder)
        self.read_only = read_only
        self._lock: FolderLock | None = None
        self.class_names = list(class_names)
        self._cases: dict[str, CaseRecord] = {}
        self.current_model: str | None = None
        self._geometry_cache: dict[str, Volume] = {}
        self._label_cache: dict[str, np.ndarray] = {}
        self._versions = None
        self._validation = None
        self.provenance = ProvenanceStore(self.folder)

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, folder: str | os.PathLike, class_names: list[str] | None = None) -> Workspace:
        """Create a workspace in ``folder`` (made if missing); open it if it already is one."""
        folder = Path(folder)
        if (folder / WORKSPACE_FILE).exists():
            return cls.open(folder)
        if folder.exists() and not folder.is_dir():
            raise InputFileError(f"{folder}: exists and is not a folder")
        names = list(class_names) if class_names else ["background", "foreground"]
        _check_class_names(names)
        ws = cls(folder, names)
        ws._take_lock()
        for sub in ("imagesTr", "labelsTr", "models", "predictions"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        ws._save_state()
        return ws

    @classmethod
    def open(cls, folder: str | os.PathLike, *, read_only: bool = False) -> Workspace:
        """Open an existing workspace; a folder of volumes without state is adopted.

        Parameters
        ----------
        read_only : bool
            Open without the lock and refuse every write: what the app does when another
            process holds the workspace (a :class:`LockedError` from a normal open).

        Raises
        ------
        LockedError
            Another process has the workspace open for writing.
        InputFileError
            Not a workspace, or a ``workspace.json`` that cannot be read or has the wrong
            shape (the file is left as it is).
        """
        folder = Path(folder)
        state_path = folder / WORKSPACE_FILE
        if not state_path.exists():
            if (folder / "imagesTr").is_dir() and not read_only:
                return cls._adopt(folder)
            raise InputFileError(f"{folder}: not a napari-barl workspace (no {WORKSPACE_FILE})")
        lock = None if read_only else _lock_workspace(folder)
        try:
            ws = cls._from_state(folder, state_path, read_only)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        ws._lock = lock
        if not read_only:
            remove_stale_temporaries(folder)  # left by a killed autosave
        return ws

    @classmethod
    def _from_state(cls, folder: Path, state_path: Path, read_only: bool) -> Workspace:
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{state_path}: cannot read the workspace state: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise InputFileError(f"{state_path}: not a napari-barl workspace file")
        try:
            return cls._parse_state(folder, state, read_only)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise InputFileError(
                f"{state_path}: unexpected content ({type(exc).__name__}: {exc}); the file is left "
                f"as it is: restore it, or move it away to rebuild the workspace from imagesTr/labelsTr"
            ) from None

    @classmethod
    def _parse_state(cls, folder: Path, state: dict, read_only: bool) -> Workspace:
        names = state.get("class_names") or ["background", "foreground"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"class_names must be a list of names, got {names!r}")
        _check_class_names(names)
        cases = state.get("cases", [])
        if not isinstance(cases, list):
            raise TypeError(f"cases must be a list, got {type(cases).__name__}")
        ws = cls(folder, names, read_only=read_only)
        for rec in cases:
            name = validate_case_name(rec["name"])
            ws._cases[name] = CaseRecord(
                name=name,
                annotated_slices=[int(z) for z in rec.get("annotated_slices", [])],
                accepted_slices=[int(z) for z in rec.get("accepted_slices", [])],
                predicted=bool(rec.get("predicted", False)),
                disagreement_score=rec.get("disagreement_score"),
                prediction_model=rec.get("prediction_model"),
            )
        ws.current_model = state.get("current_model")
        if not read_only:  # an old model_history is folded into versions.json (a write)
            ws._migrate_model_history(state.get("model_history") or [])
            for sub in ("imagesTr", "labelsTr", "models", "predictions"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        ws._reconcile()
        return ws

    def _take_lock(self) -> None:
        self._lock = _lock_workspace(self.folder)

    def close(self) -> None:
        """Release the workspace lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _check_writable(self) -> None:
        if self.read_only:
            raise LockedError(
                f"{self.folder}: opened read-only (another process has it open for writing); "
                "nothing was saved"
            )

    @classmethod
    def _adopt(cls, folder: Path) -> Workspace:
        """Make a workspace of an existing MSD folder (imagesTr/ and maybe labelsTr/)."""
        ws = cls.create(folder)
        for path in volume_files(folder / "imagesTr"):
            if path.name.endswith(_EXT):
                name = path.name[: -len(_EXT)]
                try:
                    ws._cases[validate_case_name(name)] = CaseRecord(name)
                except BarlError:
                    continue
        ws._reconcile()
        ws._save_state()
        return ws

    def _reconcile(self) -> None:
        """Trust the label files over the JSON cache (a crash may have split them)."""
        for name, rec in self._cases.items():
            if not self.image_path(name).exists():
                continue
            lp = self.label_path(name)
            rec.annotated_slices = annotated_slices(read_volume(lp).array) if lp.exists() else []
            rec.accepted_slices = [z for z in rec.accepted_slices if z in rec.annotated_slices]
            rec.predicted = rec.predicted and self.prediction_path(name).exists()

    # ------------------------------------------------------------------ paths
    @property
    def images_dir(self) -> Path:
        """``imagesTr/``: the case volumes."""
        return self.folder / "imagesTr"

    @property
    def labels_dir(self) -> Path:
        """``labelsTr/``: the sparse labels."""
        return self.folder / "labelsTr"

    @property
    def models_dir(self) -> Path:
        """``models/``: training runs, the version registry and the validation split."""
        return self.folder / "models"

    @property
    def predictions_dir(self) -> Path:
        """``predictions/``: the latest prediction of each case and each version's."""
        return self.folder / "predictions"

    def image_path(self, name: str) -> Path:
        """Where case ``name``'s volume is stored."""
        return self.images_dir / f"{validate_case_name(name)}{_EXT}"

    def label_path(self, name: str) -> Path:
        """Where case ``name``'s sparse labels are stored."""
        return self.labels_dir / f"{validate_case_name(name)}{_EXT}"

    # ------------------------------------------------------------------ cases
    @property
    def cases(self) -> list[str]:
        """Case names in the order they were added."""
        return list(self._cases)

    @property
    def num_classes(self) -> int:
        """How many classes, background included."""
        return len(self.class_names)

    def record(self, name: str) -> CaseRecord:
        """Return what the workspace remembers of case ``name`` (raise if there is none)."""
        validate_case_name(name)
        if name not in self._cases:
            raise InputFileError(f"no case {name!r} in workspace {self.folder}")
        return self._cases[name]

    def add_volume(self, volume: Volume, name: str, *, overwrite: bool = False) -> str:
        """Copy a volume into ``imagesTr/`` as case ``name`` (keeping its geometry)."""
        self._check_writable()
        validate_case_name(name)
        if volume.array.ndim != 3:
            raise InputFileError(f"case {name!r}: expected a 3D volume, got {volume.array.ndim}D")
        if name in self._cases and not overwrite:
            raise InputFileError(f"workspace already has a case named {name!r}")
        write_volume(volume, self.image_path(name))
        self._cases[name] = CaseRecord(name)
        self._geometry_cache.pop(name, None)
        self._save_state()
        return name

    def add_file(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Read a volume file (or DICOM folder) and add it as a case."""
        vol = read_volume(path)
        return self.add_volume(vol, name or sanitize_case_name(strip_extension(Path(path).name)))

    def remove_case(self, name: str) -> None:
        """Delete case ``name`` and its files (image, labels, predictions)."""
        self._check_writable()
        self.record(name)
        for p in (
            self.image_path(name),
            self.label_path(name),
            self.prediction_path(name),
            self.disagreement_path(name),
            self.confidence_path(name),
        ):
            p.unlink(missing_ok=True)
        del self._cases[name]
        self._save_state()

    def load_image(self, name: str) -> Volume:
        """Read case ``name``'s volume (and cache its grid)."""
        self.record(name)
        vol = read_volume(self.image_path(name))
        # keep only the grid: a read-only broadcast array costs no memory
        self._geometry_cache[name] = replace(vol, array=np.broadcast_to(np.uint8(0), vol.shape))
        return vol

    def reference(self, name: str) -> Volume:
        """Return the case's grid (the image, cached) for writing label maps."""
        if name not in self._geometry_cache:
            self.load_image(name)
        return self._geometry_cache[name]

    def case_state(self, name: str) -> str:
        """``"predicted"``, ``"N slices annotated"`` or ``"unlabelled"``."""
        rec = self.record(name)
        if rec.predicted:
            return "predicted"
        n = len(rec.annotated_slices)
        if n:
            return f"{n} slice{'s' if n != 1 else ''} annotated"
        return "unlabelled"

    # ------------------------------------------------------------------ classes
    def set_class_names(self, names: list[str]) -> None:
        """Rename or add classes; removing a class still used by a label map is refused."""
        _check_class_names(names)
        if len(names) < self.num_classes:
            for case in self.cases:
                if self.label_path(case).exists():
                    lab = self.load_labels(case)
                    used = (lab != IGNORE_INDEX) & (lab >= len(names))
                    if used.any():
                        raise LabelValueError(
                            f"case {case!r} still uses class {int(lab[used].max())}; "
                            "erase it before removing the class"
                        )
        self.class_names = list(names)
        self._save_state()

    # ------------------------------------------------------------------ state file
    def state(self) -> dict:
        """Return what ``workspace.json`` holds."""
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "class_names": self.class_names,
            "cases": [asdict(r) for r in self._cases.values()],
            "current_model": self.current_model,
        }

    def _save_state(self) -> None:
        self._check_writable()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / WORKSPACE_FILE) as tmp:
            tmp.write_text(json.dumps(self.state(), indent=2), encoding="utf-8")


def _lock_workspace(folder: Path) -> FolderLock:
    try:
        return FolderLock(folder, "a napari-barl workspace").acquire()
    except LockedError as exc:
        raise LockedError(f"{exc}; open it read-only to look without saving") from None


def _check_class_names(names: list[str]) -> None:
    if len(names) < 2:
        raise LabelValueError("a workspace needs at least two classes (background and one more)")
    if len(names) > IGNORE_INDEX:
        raise LabelValueError(f"at most {IGNORE_INDEX} classes are supported")
    if len(set(names)) != len(names) or any(not str(n).strip() for n in names):
        raise LabelValueError(f"class names must be unique and non-empty: {names}")
