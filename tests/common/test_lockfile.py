"""Issue 19 §1: a lock belongs to the process that took it alone; a forked child (a decode or DataLoader worker)
that outlives its killed parent does not keep it held."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stages.common.errors import BadFileError
from stages.common.lockfile import FileLock

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import os, sys, time
from stages.common.lockfile import FileLock
lock = FileLock.acquire(sys.argv[1], "busy {holder}")
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:
    os.write(ready_w, b"x")  # Python code runs in the child: the at-fork handlers have run
    time.sleep(60)
    os._exit(0)
os.read(ready_r, 1)
print(child, flush=True)
time.sleep(60)
"""


def test_a_forked_child_does_not_keep_the_lock_of_its_killed_parent(tmp_path):
    path = tmp_path / "x.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(BadFileError, match=f"busy pid {proc.pid} on "):
            FileLock.acquire(path, "busy {holder}")
        proc.kill()
        proc.wait(timeout=10)
        os.kill(child, 0)  # the child lives on ...
        FileLock.acquire(path, "busy {holder}").release()  # ... and the lock is free
    finally:
        proc.kill()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.stdout.close()


def test_the_parent_keeps_its_lock_when_a_child_exits(tmp_path):
    path = tmp_path / "x.lock"
    lock = FileLock.acquire(path, "busy {holder}")
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if lock._fd is None else 3)  # the child's copy was closed at fork
        assert os.waitpid(pid, 0)[1] == 0
        proc = subprocess.run([sys.executable, "-c", "import sys; from stages.common.lockfile import FileLock; "
                               "FileLock.acquire(sys.argv[1], 'busy {holder}')", str(path)],
                              capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 1 and f"busy pid {os.getpid()} on " in proc.stderr
    finally:
        lock.release()
