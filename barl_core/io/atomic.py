"""Verified atomic writes: a file is replaced only by a complete, checked new version.

Why this exists: a rename after a write is only atomic, not safe. Writers in C libraries
(SimpleITK's NIfTI writer prints ``NWAD: wrote only 0 of ... bytes`` and returns normally)
and a full disk or a file-size limit can leave a *short* temporary, and renaming it over
the good file destroys what was saved. So :class:`atomic_path` writes to a hidden
temporary beside the target, flushes and fsyncs it, checks that it is not empty, runs the
caller's read-back check (header, voxels), and only then renames it over the target and
syncs the folder. Any failure removes the temporary, leaves the old file as it was and
raises :class:`~barl_core.errors.OutputFileError` with one line that says why.

A kill between the steps leaves only the hidden temporary, never a partial file under the
final name; :func:`remove_stale_temporaries` reclaims those on the next start.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from barl_core.errors import BarlError, OutputFileError

__all__ = [
    "atomic_path",
    "write_text_atomic",
    "remove_stale_temporaries",
    "describe_os_error",
    "VOLUME_EXTENSIONS",
]

#: Double extensions kept whole on temporaries so that writers pick the right format.
VOLUME_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def describe_os_error(exc: BaseException) -> str:
    """Return a short reason for an OS error: ``No space left on device``, not a repr."""
    if isinstance(exc, OSError):
        if exc.errno == errno.EFBIG:
            return "file too large (a file-size limit or a full disk)"
        if exc.strerror:
            return exc.strerror
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class atomic_path:
    """Context manager yielding a temporary path beside ``target``; renamed when verified.

    Parameters
    ----------
    target : path
        The file to create or replace.
    suffix : str, optional
        Suffix of the temporary (default: the target's, double extensions included, so
        that format-sniffing writers such as SimpleITK write the right format).
    verify : callable, optional
        Called with the temporary's path after it was synced; raises (any exception) when
        the written content is not what was meant. The target is replaced only if it
        returns.
    min_size : int
        A temporary smaller than this many bytes is a failed write (default 1: an empty
        file never replaces anything).

    Raises
    ------
    OutputFileError
        The temporary cannot be made, written, synced or verified, or the rename fails;
        the target is untouched and the temporary removed.
    """

    def __init__(
        self,
        target: str | os.PathLike,
        suffix: str | None = None,
        *,
        verify: Callable[[Path], None] | None = None,
        min_size: int = 1,
    ):
        self.target = Path(target)
        self.suffix = suffix if suffix is not None else _full_suffix(self.target.name)
        self.verify = verify
        self.min_size = min_size
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        """Return the temporary path to write to."""
        try:
            if self.target.is_dir():
                raise OutputFileError(f"{self.target}: is a folder, not a file name")
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                # shortened so that a long (valid) target still gets a valid temporary name
                prefix=f".{self.target.name[:80]}.",
                suffix=".tmp" + self.suffix,
                dir=self.target.parent,
            )
        except OSError as exc:
            raise OutputFileError(f"{self.target}: cannot write: {describe_os_error(exc)}") from None
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Verify and move the temporary file into place, or remove it after an error."""
        assert self.tmp is not None
        if exc_type is None:
            try:
                self._commit()
                return False
            except BaseException:
                self.tmp.unlink(missing_ok=True)
                raise
        self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputFileError(f"{self.target}: cannot write: {describe_os_error(exc)}") from None
        return False  # re-raise the original exception (a BarlError, a bug, Ctrl-C)

    def _commit(self) -> None:
        assert self.tmp is not None
        try:
            _fsync_file(self.tmp)
            size = self.tmp.stat().st_size
        except OSError as exc:
            raise OutputFileError(f"{self.target}: cannot write: {describe_os_error(exc)}") from None
        if size < self.min_size:
            raise OutputFileError(
                f"{self.target}: the write came out short ({size} bytes; disk full or a "
                "file-size limit?); the previous file is unchanged"
            )
        if self.verify is not None:
            try:
                self.verify(self.tmp)
            except (BarlError, OSError, RuntimeError, ValueError, EOFError) as exc:
                raise OutputFileError(
                    f"{self.target}: the written file does not read back as written "
                    f"({describe_os_error(exc)}; disk full?); the previous file is unchanged"
                ) from None
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            raise OutputFileError(f"{self.target}: cannot write: {describe_os_error(exc)}") from None
        _fsync_dir(self.target.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (JSON, HTML, CSV) atomically; the size is checked after the write.

    Raises
    ------
    OutputFileError
        The file cannot be written completely; an existing file is left unchanged.
    """
    data = text.encode("utf-8")

    def _same_size(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise OutputFileError(
                f"{path}: wrote only {tmp.stat().st_size} of {len(data)} bytes (disk full?); "
                "the previous file is unchanged"
            )

    with atomic_path(path, verify=_same_size, min_size=0) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _full_suffix(name: str) -> str:
    low = name.lower()
    for ext in VOLUME_EXTENSIONS:
        if low.endswith(ext):
            return name[-len(ext):]
    return Path(name).suffix


def _fsync_file(path: Path) -> None:
    """Flush the file's data to disk; a failure here (EIO, ENOSPC on NFS) is a failed write."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Names :class:`atomic_path` (``mkstemp``) and the MHD writer (``TemporaryDirectory``) give
#: their temporaries: hidden, the target's name, 8 random characters, then ``.tmp...``.
_STALE_FILE_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp.*$")
_STALE_DIR_RE = re.compile(r"^\..+\.mhd\.[a-z0-9_]{8}$", re.IGNORECASE)


def remove_stale_temporaries(
    folder: str | os.PathLike, *, min_age_s: float = 60.0, recursive: bool = True
) -> list[Path]:
    """Delete temporaries that a killed write left behind; return what was removed.

    A write killed mid-way leaves only its hidden temporary (the final name still holds
    the last complete version), which loaders already skip; this reclaims the space.
    Only names of our own temporaries are touched, and only those older than
    ``min_age_s``, so a write in flight in another process (a prediction job) survives.
    Symbolic links are never followed (a link loop cannot hang the scan).
    """
    root = Path(folder)
    try:
        if not root.is_dir():
            return []
    except OSError:
        return []
    now = time.time()
    removed: list[Path] = []
    for path in sorted(_hidden_entries(root, recursive), key=lambda q: len(q.parts), reverse=True):
        try:
            st = path.lstat()
            if now - st.st_mtime < min_age_s or path.is_symlink():
                continue
            if path.is_file() and _STALE_FILE_RE.match(path.name):
                path.unlink()
            elif path.is_dir() and _STALE_DIR_RE.match(path.name):
                shutil.rmtree(path)
            else:
                continue
        except OSError:  # vanished meanwhile, or not ours to delete
            continue
        removed.append(path)
    return removed


def _hidden_entries(root: Path, recursive: bool) -> list[Path]:
    """Hidden entries under ``root`` (walks real folders only, never symbolic links)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: None):
        base = Path(dirpath)
        found.extend(base / n for n in filenames if n.startswith("."))
        found.extend(base / n for n in dirnames if n.startswith("."))
        if not recursive:
            break
    return found
