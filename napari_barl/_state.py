"""The plugin's one shared state: what the panels show and react to.

Why one evented object: the dock's panels (workspace, classes, annotation, tools, quality
tabs, training, review, export) must stay in step when the workspace, the open case, the
paint mode, the labels or the working model change, without reaching into each other.
Each panel subscribes to the fields it shows (``state.events.case.connect(...)``) and calls
the :class:`~barl_core.workspace.session.Session` for the work; whoever changes a field
just sets it. The model is psygnal's evented dataclass, as in careamics-napari's
``TrainingStatus``; psygnal ships with napari.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psygnal import evented

if TYPE_CHECKING:
    from barl_core.workspace.layout import Workspace
    from barl_core.workspace.session import Session

__all__ = ["BarlState", "PAINT_MODES"]

PAINT_MODES = ("slice", "scribble")


@evented
@dataclass
class BarlState:
    """What the whole dock agrees on (each field emits ``state.events.<field>`` on change).

    Two fields are counters: a change of what they count has no value worth comparing
    (a save that leaves the annotated slices as they were still adds a history entry),
    so the writer bumps them and readers ask the workspace.

    Attributes
    ----------
    session : Session or None
        The open workspace's use-cases (None before a workspace is opened).
    read_only : bool
        True when another process holds the workspace: the dock shows it and every
        action that writes is disabled.
    cases : tuple of str
        The workspace's cases, in the order they were added.
    classes : tuple of str
        Class names, index = label value.
    case : str or None
        The case shown in the viewer.
    paint_mode : str
        ``"slice"`` (a painted slice counts whole) or ``"scribble"`` (only painted voxels).
    model : str or None
        The working model version (``"v1"``...), None without one.
    job : str
        ``"training"`` or ``"prediction"`` while a child job runs, else ``""``.
    labels_saved : int
        Bumped after each save of the open case's labels (paint, mark, accept, revert).
    predictions : int
        Bumped after predictions are filed: views of predictions reload them.
    """

    session: Any = None  # Session | None; Any keeps psygnal from comparing by value
    read_only: bool = False
    cases: tuple = ()
    classes: tuple = ()
    case: str | None = None
    paint_mode: str = "slice"
    model: str | None = None
    job: str = ""
    labels_saved: int = 0
    predictions: int = 0

    def __post_init__(self) -> None:
        """Refuse a paint mode the annotation code does not know."""
        if self.paint_mode not in PAINT_MODES:
            raise ValueError(f"paint_mode must be one of {PAINT_MODES}, got {self.paint_mode!r}")

    @property
    def workspace(self) -> Workspace | None:
        """The session's workspace, or None."""
        return self.session.workspace if self.session is not None else None

    @property
    def can_write(self) -> bool:
        """True when a workspace is open and this process may write it."""
        return self.session is not None and not self.read_only

    @property
    def has_model(self) -> bool:
        """True when the workspace has a working model to fine-tune or predict with."""
        ws = self.workspace
        return ws is not None and ws.current_model_path() is not None

    def require_session(self) -> Session:
        """Return the session, or raise a clear error for the user."""
        from barl_core.errors import InputFileError

        if self.session is None:
            raise InputFileError("open or create a workspace folder first")
        return self.session

    def require_case(self) -> str:
        """Return the open case, or raise a clear error for the user."""
        from barl_core.errors import InputFileError

        self.require_session()
        if self.case is None:
            raise InputFileError("open a case first")
        return self.case
