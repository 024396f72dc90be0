"""Exclusive advisory file locks that a dead process never leaves stuck (issue 13 §2).

:class:`FileLock` holds a ``flock`` on a small file that records the holder's PID and host. The kernel drops a
``flock`` when its process dies, so a killed run never leaves anything locked. ``train`` locks ``train.lock`` inside a
run directory (the file stays: it says who held it last); ``prep`` locks ``<OUT>.lock`` beside its output and removes
the file on release (``unlink_on_release``; a process that opened the file just before it was removed notices, by
its inode, that it locked a stale file and tries again).

The lock belongs to the process that took it alone (issue 19 §1). A ``flock`` lives on the open file description,
which a forked child shares: were a decode or DataLoader worker to keep the inherited descriptor open, it would keep
the lock held after its parent was killed, and the rerun would be refused naming a dead PID. So the descriptor is
opened close-on-exec (for ``exec``) and every forked child closes its inherited copies at once (``register_at_fork``;
closing a duplicate does not unlock the parent's lock, an explicit ``LOCK_UN`` would).
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from stages.common.errors import BadFileError

_HELD: set["FileLock"] = set()  # the locks this process holds until released (closed in forked children)


def _drop_inherited_locks() -> None:
    """In a forked child: close the descriptors of the parent's locks (never ``LOCK_UN``: that would unlock the
    parent too), so the lock ends with the process that took it."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class FileLock:
    """An exclusive lock on ``path`` (module docstring); :meth:`release` when done (idempotent)."""

    def __init__(self, path: Path, fd: int, unlink_on_release: bool):
        self.path, self._fd, self._unlink = path, fd, unlink_on_release
        _HELD.add(self)

    @classmethod
    def acquire(cls, path: str | Path, busy: str, *, subject: str | Path | None = None,
                unlink_on_release: bool = False) -> "FileLock":
        """Lock ``path`` or raise ``BadFileError(subject or path, busy + holder)`` while another process holds it.

        ``busy`` is the message with a ``{holder}`` field ("another `3dgp train` ({holder}) is training ..."), which
        becomes the holder's PID and host."""
        path = Path(path)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise BadFileError(subject or path, busy.format(holder=holder) + "; wait for it to finish or stop "
                                                                                 "it first") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return cls(path, fd, unlink_on_release)

    def release(self) -> None:
        """Unlock (and remove the file with ``unlink_on_release``); idempotent."""
        if self._fd is None:
            return
        _HELD.discard(self)
        if self._unlink:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
