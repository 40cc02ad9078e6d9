"""The plugin's one shared state: what the panels show and react to.

Why one evented object: the dock's panels (annotation, tools, quality tabs, training) must
stay in step when the workspace, the open case, the paint mode or the working model
changes, without reaching into each other. Each panel subscribes to the fields it shows
(``state.events.case.connect(...)``) and calls the :class:`~barl_core.workspace.session.Session`
for the work; whoever changes a field just sets it. The model is psygnal's evented dataclass,
as in careamics-napari's ``TrainingStatus``; psygnal ships with napari.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psygnal import evented

if TYPE_CHECKING:
    from barl_core.workspace.session import Session

__all__ = ["BarlState", "PAINT_MODES"]

PAINT_MODES = ("slice", "scribble")


@evented
@dataclass
class BarlState:
    """What the whole dock agrees on (each field emits ``state.events.<field>`` on change).

    Attributes
    ----------
    session : Session or None
        The open workspace's use-cases (None before a workspace is opened).
    case : str or None
        The case shown in the viewer.
    paint_mode : str
        ``"slice"`` (a painted slice counts whole) or ``"scribble"`` (only painted voxels).
    model : str or None
        The working model version (``"v1"``...), None without one.
    job : str
        ``"training"`` or ``"prediction"`` while a child job runs, else ``""``.
    """

    session: Any = None  # Session | None; Any keeps psygnal from comparing by value
    case: str | None = None
    paint_mode: str = "slice"
    model: str | None = None
    job: str = ""

    def __post_init__(self) -> None:
        if self.paint_mode not in PAINT_MODES:
            raise ValueError(f"paint_mode must be one of {PAINT_MODES}, got {self.paint_mode!r}")

    @property
    def workspace(self):
        """The session's workspace, or None."""
        return self.session.workspace if self.session is not None else None

    def require_session(self) -> Session:
        """The session, or a clear error for the user."""
        from barl_core.errors import InputFileError

        if self.session is None:
            raise InputFileError("open or create a workspace folder first")
        return self.session
