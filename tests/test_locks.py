"""Lock files (brainit_core.locks): a second writer is refused with the owner's pid; a killed owner
never leaves the output blocked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainit_core.locks import FileLock, LockedError, lock_path_for
ROOT = Path(__file__).resolve().parents[1]

HOLD = ("import sys, time\n"
        "from brainit_core.locks import FileLock\n"
        "lock = FileLock(sys.argv[1], 'x').acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def hold_lock(path) -> subprocess.Popen:
    """A child process that takes the lock ``path`` and keeps it until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_owners_pid(tmp_path):
    lock = lock_path_for(tmp_path / "out")
    assert lock == tmp_path / ".out.lock"
    proc = hold_lock(lock)
    try:
        with pytest.raises(LockedError, match=rf"dataset .*out is in use by another process \(pid {proc.pid}"):
            FileLock(lock, f"dataset {tmp_path / 'out'}").acquire()
        t = time.monotonic()
        with pytest.raises(LockedError):
            FileLock(lock, "x", timeout=0.5).acquire()
        assert time.monotonic() - t >= 0.4
        with pytest.raises(LockedError):
            FileLock(lock, "x", shared=True).acquire()  # a reader does not read what a writer is writing
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: the OS releases the lock
        proc.wait()
    assert lock.exists()  # the stale file stays, but locks again at once
    with FileLock(lock, "x") as held:
        assert held.held and lock.read_text() == str(os.getpid())
    assert not lock.exists()


def test_readers_share_a_lock_and_exclude_a_writer(tmp_path):
    lock = tmp_path / ".c.lock"
    with FileLock(lock, "cache", shared=True), FileLock(lock, "cache", shared=True):
        with pytest.raises(LockedError, match="cache is in use"):
            FileLock(lock, "cache").acquire()
    with FileLock(lock, "cache"):
        pass
