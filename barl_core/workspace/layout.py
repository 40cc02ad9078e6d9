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
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from barl_core.active.suggest import case_score
from barl_core.data.case_names import sanitize_case_name, validate_case_name
from barl_core.data.discovery import volume_files
from barl_core.data.labels import IGNORE_INDEX, annotated_slices
from barl_core.errors import (
    BarlError,
    GeometryMismatchError,
    InputFileError,
    LabelValueError,
    LockedError,
)
from barl_core.inference.outputs import output_paths
from barl_core.io.volume import (
    Volume,
    atomic_path,
    check_label_values,
    read_volume,
    remove_stale_temporaries,
    strip_extension,
    write_labels,
    write_volume,
)
from barl_core.runtime.lock import FolderLock
from barl_core.workspace.provenance import ProvenanceStore, slice_dice

__all__ = [
    "Workspace",
    "CaseRecord",
    "WORKSPACE_FILE",
    "check_slice",
]

WORKSPACE_FILE = "workspace.json"
_FORMAT = "napari-barl-workspace"
_FORMAT_VERSION = 1
_EXT = ".nii.gz"


@dataclass
class CaseRecord:
    """What ``workspace.json`` remembers about one case."""

    name: str
    annotated_slices: list[int] = field(default_factory=list)
    accepted_slices: list[int] = field(default_factory=list)
    predicted: bool = False
    disagreement_score: float | None = None
    prediction_model: str | None = None


class Workspace:
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

    def prediction_path(self, name: str) -> Path:
        """Where case ``name``'s latest class map is stored."""
        return self.predictions_dir / f"{validate_case_name(name)}{_EXT}"

    def disagreement_path(self, name: str) -> Path:
        """Where case ``name``'s latest disagreement map is stored."""
        return output_paths(self.predictions_dir, validate_case_name(name))[1]

    def confidence_path(self, name: str) -> Path:
        """Where case ``name``'s latest agreement confidence is stored."""
        return output_paths(self.predictions_dir, validate_case_name(name))[2]

    def version_prediction_path(self, version: str, name: str) -> Path:
        """Where the prediction of model version ``version`` on case ``name`` is kept."""
        return self.predictions_dir / "versions" / validate_case_name(version) / f"{name}{_EXT}"

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

    # ------------------------------------------------------------------ labels
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

    # ------------------------------------------------------------------ predictions
    def set_prediction(
        self,
        name: str,
        labels: np.ndarray,
        disagreement: np.ndarray | None = None,
        *,
        model: str | None = None,
        confidence: np.ndarray | None = None,
        version: str | None = None,
    ) -> float | None:
        """Store a prediction (and its disagreement map); return the case's disagreement score.

        The score is :func:`barl_core.active.suggest.case_score` (the mean of the most
        uncertain unannotated slices), what :func:`~barl_core.active.suggest.suggest_cases` ranks.
        """
        self._check_writable()
        rec = self.record(name)
        ref = self.reference(name)
        write_labels(np.asarray(labels), ref, self.prediction_path(name))
        if version is not None:
            vp = self.version_prediction_path(version, name)
            vp.parent.mkdir(parents=True, exist_ok=True)
            write_labels(np.asarray(labels), ref, vp)
        conf_path = self.confidence_path(name)
        if confidence is not None:
            from barl_core.inference.agreement import save_confidence

            if np.shape(confidence) != ref.shape:
                raise GeometryMismatchError(
                    f"confidence of shape {np.shape(confidence)} does not match case {name!r}"
                )
            save_confidence(conf_path, confidence)
        else:
            conf_path.unlink(missing_ok=True)
        score = None
        if disagreement is not None:
            dis = np.asarray(disagreement, dtype=np.float32)
            if dis.shape != ref.shape:
                raise GeometryMismatchError(
                    f"disagreement of shape {dis.shape} does not match case {name!r} {ref.shape}"
                )
            write_volume(ref.with_array(dis), self.disagreement_path(name))
            score = case_score(dis, self.load_labels(name), axis=0)
        rec.predicted = True
        rec.disagreement_score = score
        rec.prediction_model = model or self.current_model
        self._save_state()
        return score

    def load_prediction(self, name: str) -> np.ndarray | None:
        """Return the latest class map of case ``name``, or None before a prediction."""
        p = self.prediction_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        return read_volume(p).array

    def load_disagreement(self, name: str) -> np.ndarray | None:
        """Return the latest disagreement map (float32) of case ``name``, or None."""
        p = self.disagreement_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        return read_volume(p).array.astype(np.float32, copy=False)

    def load_confidence(self, name: str) -> np.ndarray | None:
        """Return the agreement confidence of the latest prediction (float16), if it has one."""
        p = self.confidence_path(name)
        if not self.record(name).predicted or not p.exists():
            return None
        from barl_core.inference.agreement import load_confidence

        return load_confidence(p)

    def load_version_prediction(self, version: str, name: str) -> np.ndarray | None:
        """Return model version ``version``'s class map of case ``name``, or None."""
        p = self.version_prediction_path(version, name)
        return read_volume(p).array if p.exists() else None

    def tag_accepted(self, name: str, z: int) -> None:
        """Remember that annotated slice ``z`` came from the model's proposal."""
        rec = self.record(name)
        if int(z) in rec.annotated_slices and int(z) not in rec.accepted_slices:
            rec.accepted_slices = sorted(rec.accepted_slices + [int(z)])
            self._save_state()

    def accepted_slices(self, name: str) -> list[int]:
        """Annotated slices taken from a prediction (not drawn from scratch)."""
        return list(self.record(name).accepted_slices)

    def disagreement_scores(self) -> dict[str, float]:
        """Per predicted case, its disagreement score (for case ranking)."""
        return {
            n: float(r.disagreement_score)
            for n, r in self._cases.items()
            if r.predicted and r.disagreement_score is not None
        }

    # ------------------------------------------------------------------ classes and models
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


    @property
    def versions(self):
        """The model versions (:class:`barl_core.workspace.versions.VersionStore`), ``models/versions.json``."""
        if getattr(self, "_versions", None) is None:
            from barl_core.workspace.versions import VersionStore

            self._versions = VersionStore(self.models_dir / "versions.json")
        return self._versions

    @property
    def validation(self):
        """The frozen validation split (:class:`barl_core.workspace.validation.FrozenValidation`)."""
        if getattr(self, "_validation", None) is None:
            from barl_core.workspace.validation import FrozenValidation

            self._validation = FrozenValidation(self.models_dir / "validation.json")
        return self._validation

    def add_version(self, path: str | os.PathLike, **kwargs):
        """Record a training run as a model version and make it the current model.

        ``parent`` defaults to the current version (a fine-tune); pass ``parent=None`` for
        a run trained from scratch.
        """
        if "parent" not in kwargs:
            current = self.current_version()
            kwargs["parent"] = current.id if current else None
        rel = self._rel(Path(path))
        v = self.versions.add(rel, **kwargs)
        self.current_model = rel
        self._save_state()
        return v

    def _migrate_model_history(self, history: list[dict]) -> None:
        """Fold an old ``workspace.json`` ``model_history`` into ``models/versions.json``.

        Workspaces written before the registry was one kept a second list of models in
        ``workspace.json``; each of its models that is not a version yet becomes one (note
        ``migrated``), in order, and ``workspace.json`` is rewritten without the list.
        """
        if not history:
            return
        for rec in history:
            path = str(rec.get("path", ""))
            if not path or self.versions.by_path(path) is not None:
                continue
            info = dict(rec.get("info") or {})
            config = info.get("config") if isinstance(info.get("config"), dict) else {}
            parent = self.versions.versions[-1].id if self.versions.versions else None
            self.versions.add(path, config=config, data_snapshot={}, parent=parent,
                              note="migrated from workspace.json", created=rec.get("created"))
        self._save_state()

    def current_version(self):
        """Return the :class:`~barl_core.workspace.versions.ModelVersion` of the current model, if it is one."""
        return self.versions.by_path(self.current_model)

    def rollback(self, version: str) -> Path:
        """Make model version ``version`` the working model again (nothing is deleted)."""
        v = self.versions.get(version)
        p = Path(v.path) if Path(v.path).is_absolute() else self.folder / v.path
        if not p.exists():
            raise InputFileError(f"the checkpoint of version {version} is gone: {p}")
        self.current_model = v.path
        self._save_state()
        return p

    def current_model_path(self) -> Path | None:
        """Return the working model's checkpoint, or None before the first training."""
        if not self.current_model:
            return None
        p = Path(self.current_model)
        return p if p.is_absolute() else self.folder / p

    def new_run_dir(self, prefix: str = "run") -> Path:
        """Make and return a fresh, time-stamped run folder under ``models/``."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = self.models_dir / f"{prefix}-{stamp}"
        path, i = base, 1
        while path.exists():
            path = base.with_name(f"{base.name}-{i}")
            i += 1
        path.mkdir(parents=True)
        return path

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

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


def check_slice(z: int, n: int) -> int:
    """Return ``z`` as an int if it is a slice index of a volume of ``n`` slices, else raise."""
    z = int(z)
    if not 0 <= z < n:
        raise InputFileError(f"slice {z} is outside the volume (0..{n - 1})")
    return z


def _check_class_names(names: list[str]) -> None:
    if len(names) < 2:
        raise LabelValueError("a workspace needs at least two classes (background and one more)")
    if len(names) > IGNORE_INDEX:
        raise LabelValueError(f"at most {IGNORE_INDEX} classes are supported")
    if len(set(names)) != len(names) or any(not str(n).strip() for n in names):
        raise LabelValueError(f"class names must be unique and non-empty: {names}")
