"""Recursive listing of a source folder that never blocks and never loops (issue 13 §5).

Regular files (and symbolic links to them) are inputs. Symbolic links to folders are followed, except one that
leads back to a folder already listed (a loop, or the same folder twice). Everything else is *skipped* with a
reason that goes to ``prep_report.json`` like any unreadable image: dangling links, link loops
(``a -> a``), FIFOs, sockets and device files (opening a FIFO would block the prep forever), and folders that
cannot be read.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from stages.prep.sources.units import Skipped

_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def _special_reason(mode: int) -> str:
    kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
    return f"{kind}, not a regular file; skipped without opening it"


def walk_files(root: Path) -> tuple[list[str], list[Skipped]]:
    """Every regular file under ``root`` as a sorted '/'-separated relative path, plus the entries skipped."""
    files: list[str] = []
    skipped: list[Skipped] = []
    seen = _real_folders(root)  # every real folder under root: a link to one of them is a loop or a duplicate
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)  # popped in name order
        except OSError as exc:
            skipped.append(Skipped(rel or ".", f"cannot list this folder ({exc.strerror or exc})"))
            continue
        for entry in entries:
            child = f"{rel}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                skipped.append(Skipped(child, _unstattable_reason(entry, exc)))
                continue
            if stat.S_ISREG(st.st_mode):
                files.append(child)
            elif stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(entry.path)
                if entry.is_symlink() and real in seen:
                    here = os.path.realpath(folder)
                    loop = here == real or here.startswith(real.rstrip(os.sep) + os.sep)
                    skipped.append(Skipped(child, "symbolic link loop (points to a folder above it)" if loop
                                           else "symbolic link to a folder that is listed already"))
                    continue
                seen.add(real)
                stack.append((entry.path, child + "/"))
            else:
                skipped.append(Skipped(child, _special_reason(st.st_mode)))
    files.sort()
    skipped.sort(key=lambda s: s.source)
    return files, skipped


def _real_folders(root: Path) -> set[str]:
    """The real paths of ``root`` and of every folder below it reached without following links."""
    found = {os.path.realpath(root)}
    for folder, dirs, _ in os.walk(root, followlinks=False):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                found.add(os.path.realpath(path))
    return found


def _unstattable_reason(entry: os.DirEntry, exc: OSError) -> str:
    if not entry.is_symlink():
        return f"cannot read ({exc.strerror or exc})"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"dangling symbolic link (-> {_readlink(entry.path)})"


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
