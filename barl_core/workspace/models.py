"""The models of a workspace: the version registry, the frozen validation, the working model.

Part of :class:`~barl_core.workspace.layout.Workspace` (see :mod:`barl_core.workspace.labels`).
``models/versions.json`` is the one registry (:mod:`barl_core.workspace.versions`);
``workspace.json`` keeps only the working model's path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from barl_core.errors import InputFileError

__all__ = ["ModelStore"]


class ModelStore:
    """Models of the workspace (used as a part of :class:`~barl_core.workspace.layout.Workspace`)."""

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
        if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
            raise TypeError(f"model_history must be a list of records, got {history!r:.80}")
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
