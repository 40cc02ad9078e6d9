"""One writer per folder: a lock file with pid and host, released even by a crash.

Why this exists: two trainings into one run folder both reported success while one model
survived and ``metrics.jsonl`` interleaved their iterations; two app processes on one
workspace each saved labels from their own stale copy and lost the other's strokes. A
:class:`FolderLock` makes the second process fail at once with a message naming the
holder (pid, host, since when, what it does).

How: the lock file ``.barl.lock`` is opened and locked with ``fcntl.flock``. The kernel
drops that lock when the holder exits or is killed, so a lock left by a crash is *stale*
by construction and the next process simply takes it over; no pid guessing is needed on
one machine. The pid/host text is for the message (and for file systems without
``flock``, where a lock held by a dead pid on this host is taken over).

Within one process the lock is shared: a second :class:`FolderLock` on the same folder
succeeds and the file is released when the last one is.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from barl_core.errors import LockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: pid/host text only
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLock", "LOCK_NAME", "lock_holder"]

LOCK_NAME = ".barl.lock"

_registry: dict[str, tuple[int, int]] = {}  # real folder -> (fd, users) in this process
_registry_guard = threading.Lock()


def lock_holder(folder: str | os.PathLike) -> dict | None:
    """Read what the lock file of ``folder`` says about its holder (None when absent/unreadable)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
        info = json.loads(text)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    what = f" ({info['purpose']})" if info.get("purpose") else ""
    return f"process {info.get('pid', '?')} on {info.get('host', '?')}{what}, since {when}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class FolderLock:
    """An exclusive, crash-safe lock on a folder (a run folder, a workspace).

    Parameters
    ----------
    folder : path
        The folder to lock (created if missing).
    purpose : str
        Shown to the process that finds the folder locked, e.g. ``"barl train"``.

    Raises
    ------
    LockedError
        From :meth:`acquire` (and ``with``): another live process holds the folder.
    """

    def __init__(self, folder: str | os.PathLike, purpose: str = ""):
        self.folder = Path(folder)
        self.purpose = purpose
        self._key: str | None = None

    @property
    def path(self) -> Path:
        """Return the lock file inside the folder."""
        return self.folder / LOCK_NAME

    @property
    def held(self) -> bool:
        """Return True while this object holds the lock."""
        return self._key is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`~barl_core.errors.LockedError` naming its holder."""
        if self._key is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        with _registry_guard:
            if key in _registry:
                fd, users = _registry[key]
                _registry[key] = (fd, users + 1)
                self._key = key
                return self
            fd = self._take()
            _registry[key] = (fd, 1)
            self._key = key
        return self

    def _take(self) -> int:
        for _ in range(10):  # the holder may unlink the file between our open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise LockedError(self._busy_message()) from None
                    except OSError:  # no flock on this file system: trust pid/host
                        self._check_pid_host()
                else:  # pragma: no cover
                    self._check_pid_host()
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                self._write_info(fd)
                return fd
            except BaseException:
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise
        raise LockedError(f"{self.folder}: cannot take the lock (it keeps changing hands)")

    def _check_pid_host(self) -> None:
        info = lock_holder(self.folder)
        if not info or info.get("host") != socket.gethostname():
            if info:
                raise LockedError(self._busy_message(info))
            return
        pid = info.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            raise LockedError(self._busy_message(info))

    def _busy_message(self, info: dict | None = None) -> str:
        info = info if info is not None else lock_holder(self.folder)
        return (
            f"{self.folder}: in use by {_describe(info)}; wait for it to finish or stop it "
            f"(a lock left by a crashed process is taken over automatically)"
        )

    def _write_info(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "purpose": self.purpose,
            "command": " ".join(sys.argv[:3])[:200],
        }
        data = json.dumps(info).encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:  # a full disk must not stop the lock itself from working
            pass

    def release(self) -> None:
        """Give the lock back (the file is removed by its last user in this process)."""
        key, self._key = self._key, None
        if key is None:
            return
        with _registry_guard:
            fd, users = _registry.get(key, (None, 0))
            if fd is None:
                return
            if users > 1:
                _registry[key] = (fd, users - 1)
                return
            del _registry[key]
            try:
                self.path.unlink(missing_ok=True)  # unlink first, then unlock (see _take)
            except OSError:
                pass
            os.close(fd)

    def __enter__(self) -> FolderLock:
        """Take the lock for the ``with`` block."""
        return self.acquire()

    def __exit__(self, *exc) -> None:
        """Release the lock at the end of the ``with`` block."""
        self.release()

    def __del__(self) -> None:  # a forgotten lock is released with its object
        """Release a lock its owner forgot, when the object goes away."""
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
