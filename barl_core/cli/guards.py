"""Checks every command makes on its outputs *before* any work starts.

Why this exists: outputs used to be checked only when written, after minutes of
prediction, and never against the inputs: ``barl predict --image DIR --out DIR`` replaced
the input images with label maps, and a folder holding ``a.nii.gz`` and ``a.nrrd`` wrote
both predictions to ``a.nii.gz``. Here a command lists what it will write and what it
reads; an output that is an input, two outputs with one name, or an output folder that
cannot be written to is refused at once with one line, before anything is read or written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from barl_core.errors import OutputFileError
from barl_core.io.atomic import describe_os_error

__all__ = ["check_outputs", "check_output_folder", "same_path", "add_series_id"]


def _key(path: Path) -> str:
    """Return a path's identity: its real location (symbolic links and ``..`` resolved)."""
    try:
        return os.path.normcase(str(path.resolve()))
    except (OSError, RuntimeError):  # a link loop: compare the spelling
        return os.path.normcase(os.path.abspath(path))


def same_path(a: Path, b: Path) -> bool:
    """Return True when ``a`` and ``b`` name one file or folder (links, hard links included)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return _key(a) == _key(b)


def check_outputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse outputs that are inputs, that collide with each other, or that are folders.

    Parameters
    ----------
    outputs : paths
        Every file the command will write.
    inputs : paths
        Every file or folder it reads; an existing file inside an input folder is
        protected too (``--json gt/case.nii.gz`` would replace ground truth).

    Raises
    ------
    OutputFileError
        With the first problem found; nothing has been written.
    """
    ins = list(inputs)
    seen: dict[str, Path] = {}
    for out in outputs:
        for src in ins:
            if same_path(out, src) or _existing_inside(out, src):
                raise OutputFileError(f"{out}: would overwrite the input {src}; choose another output")
        key = _key(out)
        if key in seen:
            raise OutputFileError(
                f"{out}: two outputs of this command would share this name ({seen[key]} and {out}); "
                "rename one of the inputs or write to separate folders"
            )
        seen[key] = out
        try:
            if out.is_dir():
                raise OutputFileError(f"{out}: is a folder, not a file name")
        except OSError as exc:
            raise OutputFileError(f"{out}: cannot write here: {describe_os_error(exc)}") from None


def _existing_inside(out: Path, folder: Path) -> bool:
    try:
        if not (folder.is_dir() and out.exists()):
            return False
        return Path(_key(folder)) in Path(_key(out)).parents
    except OSError:
        return False


def check_output_folder(folder: Path) -> None:
    """Make ``folder`` if needed and prove a file can be created in it (then remove it).

    Raises
    ------
    OutputFileError
        The folder cannot be made or written to (read-only, no permission, a file in the
        way, a name too long); checked before minutes of work, not after.
    """
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputFileError(f"{folder}: exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".barl-write-test.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputFileError(f"{folder}: cannot write here: {describe_os_error(exc)}") from None


def add_series_id(parser) -> None:
    """Add the ``--series-id`` option of commands that read a DICOM folder as one volume."""
    parser.add_argument(
        "--series-id",
        metavar="UID",
        default=None,
        help="DICOM series to read when a folder holds several (barl info lists them)",
    )
