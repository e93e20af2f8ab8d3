"""Exclusive (or shared) lock files that keep two processes from writing one output at a time.

A lock is a small file holding the owner's process id, locked with ``fcntl.flock``. The operating
system releases it when the process exits or is killed, so a crash never leaves an output blocked:
the stale file is simply locked again by the next writer. The file is removed when the lock is
released normally. A second process is refused at once (or after ``timeout`` seconds) with a
:class:`LockedError` that names the output and the owner's pid, instead of waiting forever.

Examples
--------
>>> with FileLock(lock_path_for(out), what=f"dataset {out}"):
...     write(out)
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from brainit_core.errors import BrainITError


class LockedError(BrainITError):
    """Another process holds the lock of an output this process wants to write."""


def lock_path_for(path) -> Path:
    """The lock file of the output ``path``: ``.<name>.lock`` beside it (outside it, so an output
    folder that is replaced as a whole, or checked for emptiness, is not disturbed by its lock)."""
    path = Path(path).expanduser()
    return path.parent / f".{path.name}.lock"


def _owner(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text().strip()
    except OSError:
        return "unknown pid"
    return f"pid {pid}" if pid.isdigit() else "unknown pid"


class FileLock:
    """An ``fcntl.flock`` lock on ``path``, as a context manager.

    Parameters
    ----------
    path : str or PathLike
        The lock file (made, with its parent folder, if missing). Use :func:`lock_path_for`.
    what : str
        The guarded output, for the error message (e.g. ``"feature cache /d/features/x.h5"``).
    shared : bool
        A shared (reader) lock: several readers may hold it together, but not with a writer.
    timeout : float
        Seconds to keep trying before giving up (0: refuse at once).

    Raises
    ------
    LockedError
        When another process holds a conflicting lock after ``timeout`` seconds.
    """

    def __init__(self, path, what: str, shared: bool = False, timeout: float = 0.0):
        self.path = Path(path)
        self.what = what
        self.shared = shared
        self.timeout = float(timeout)
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        """Take the lock (see the class docstring). Returns ``self``."""
        if self._fd is not None:
            raise BrainITError(f"{self.path}: lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, mode)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(f"{self.what} is in use by another process ({_owner(self.path)}; lock file "
                                      f"{self.path}); wait for it to finish or stop it, then run this again") from None
                time.sleep(0.2)
                continue
            # the file may have been removed by its previous owner between open and flock: retry on the new one
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if not self.shared:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return self

    def release(self) -> None:
        """Release the lock; an exclusive owner also removes the lock file."""
        if getattr(self, "_fd", None) is None:  # also when __init__ failed before setting it
            return
        if not self.shared:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None

    @property
    def held(self) -> bool:
        """This object holds the lock."""
        return self._fd is not None

    def __del__(self) -> None:  # an owner dropped after an exception must not keep the output locked
        self.release()

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
