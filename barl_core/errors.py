"""Errors that user-facing entry points raise instead of tracebacks.

Every failure a user can cause (a bad file, a mismatched label map, an empty
dataset, an untrusted checkpoint) is a :class:`BarlError`; the CLI prints its
message and exits with code 2, the napari plugin shows it as a notification.
"""

from __future__ import annotations

__all__ = [
    "BarlError",
    "InputFileError",
    "OutputFileError",
    "LockedError",
    "GeometryMismatchError",
    "LabelValueError",
    "InvalidVolumeError",
    "EmptyDatasetError",
    "CheckpointError",
    "TrainingError",
    "CancelledError",
]


class BarlError(Exception):
    """Base class of every error a user can cause; its message is shown verbatim."""


class InputFileError(BarlError):
    """A file or folder is missing, unreadable, corrupt or of an unsupported format."""


class OutputFileError(BarlError):
    """An output cannot be written, or would replace an input; nothing was replaced.

    Disk full, no permission, a bad name, or a target that is an input or another output
    of the same command.
    """


class LockedError(BarlError):
    """A run folder or workspace is in use by another process (see ``runtime.lock``)."""


class GeometryMismatchError(BarlError):
    """Two volumes that must share a voxel grid (image and labels) do not."""


class LabelValueError(BarlError):
    """A label map holds values outside the declared classes and the ignore value."""


class InvalidVolumeError(BarlError):
    """A volume's content is unusable: NaN/Inf voxels, wrong dimensionality, empty."""


class EmptyDatasetError(BarlError):
    """A dataset folder holds no usable case, or training has no annotated voxel."""


class CheckpointError(BarlError):
    """A model file is unsafe, corrupt, of another version, or of another architecture."""


class TrainingError(BarlError):
    """Training cannot start or continue (bad configuration, out of memory, ...)."""


class CancelledError(BarlError):
    """A long job was cancelled by the user; not a failure, but it stops the job."""
