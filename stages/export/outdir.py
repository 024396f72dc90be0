"""The export folder: complete or visibly not, and replaced only when it is ours (issue 19 §5).

An export is written into a fresh staging folder beside ``--outdir`` (``<outdir>.partial-<pid>``, holding a
``.3dgp-export-staging`` marker from its first moment) and becomes ``--outdir`` only at the end, in one rename; an
existing export of ours is swapped out atomically (``renameat2(RENAME_EXCHANGE)`` where the system has it, else two
renames) and then deleted. A ``kill -9`` at any moment therefore leaves the old folder as it was, plus a staging
folder whose name says it is unfinished; the next export to the same place deletes such leftovers once the process
that wrote them is gone. A start that is refused leaves nothing, and an error during the export deletes its staging
folder.

Every finished export holds ``export.json``: the snapshot it came from (path, sha256, kimg), the request, and each
file with its sha256 and size. It is also how an existing folder is recognised as ours: ``--outdir`` may be
missing, an empty folder, or a folder holding exactly the files its ``export.json`` lists; anything else (a user's
folder, an export with files added since) is refused with one line before any work, and nothing is deleted.
"""
from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from stages.common.errors import BadOptionError
from stages.common.hashing import sha256_file

logger = logging.getLogger(__name__)

MANIFEST_NAME = "export.json"
MANIFEST_FORMAT = "3dgp-export"
MANIFEST_VERSION = 1
STAGING_MARKER = ".3dgp-export-staging"
_STAGING_INFIX = ".partial-"
_OLD_SUFFIX = "-old"  # the replaced export, for a moment, where no atomic swap exists
_RENAME_EXCHANGE = 2  # <linux/fs.h>
_AT_FDCWD = -100


def staging_path(outdir: Path, pid: int | None = None) -> Path:
    """Where this process builds the export that becomes ``outdir``."""
    return outdir.with_name(f"{outdir.name}{_STAGING_INFIX}{os.getpid() if pid is None else pid}")


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST_NAME
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, list) \
            or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        return None
    return manifest


def _tree(folder: Path) -> tuple[set[str], list[str]]:
    """(relative paths of the regular files under ``folder``, entries that are neither files nor folders)."""
    files, odd = set(), []
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                odd.append(rel)
            elif path.is_file():
                files.add(rel)
    return files, odd


def not_ours(folder: Path) -> str | None:
    """Why the existing folder ``folder`` cannot be replaced by an export, or None when it is empty or an export
    of ours (its ``export.json`` lists exactly the files it holds)."""
    if folder.is_symlink():
        return "it is a symbolic link"
    if not folder.is_dir():
        return "it is a file, not a folder"
    if not any(folder.iterdir()):
        return None
    manifest = _read_manifest(folder)
    if manifest is None:
        return f"it is not empty and holds no {MANIFEST_NAME} of a 3dgp export"
    files, odd = _tree(folder)
    extra = sorted(odd + list(files - {f["path"] for f in manifest["files"]} - {MANIFEST_NAME, STAGING_MARKER}))
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        return f"it holds files its {MANIFEST_NAME} does not list: {', '.join(extra[:3])}{more}"
    return None


def check_outdir(outdir: str) -> Path:
    """Before any work, creating nothing: ``--outdir`` is missing, empty or an export of ours, and its parent (or
    the nearest existing ancestor) is a writable folder. Returns it as a Path."""
    if not str(outdir).strip():
        raise BadOptionError("--outdir", "must not be empty")
    path = Path(outdir)
    if path.exists() or path.is_symlink():
        reason = not_ours(path)
        if reason is not None:
            raise BadOptionError("--outdir", f"{outdir} already exists and {reason}, so it is left alone; choose a "
                                             "new or empty folder")
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadOptionError("--outdir", f"{outdir}: cannot write there (Not a directory)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadOptionError("--outdir", f"{outdir}: cannot write there (Permission denied)")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(outdir: Path) -> None:
    """Delete the staging folders of earlier exports to ``outdir`` whose process is gone (killed mid-run); only
    folders that carry our staging marker or are complete exports of ours (killed between swap and cleanup)."""
    parent = outdir.absolute().parent
    if not parent.is_dir():
        return
    prefix = outdir.name + _STAGING_INFIX
    for entry in parent.iterdir():
        tail = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
        pid = tail.removesuffix(_OLD_SUFFIX)
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)) or entry.is_symlink():
            continue
        if entry.is_dir() and ((entry / STAGING_MARKER).is_file() or not_ours(entry) is None):
            logger.info("removing %s, left by an export that did not finish", entry)
            shutil.rmtree(entry, ignore_errors=True)


def open_staging(outdir: Path) -> Path:
    """Create this process's empty staging folder for ``outdir`` (clearing dead exports' leftovers first)."""
    remove_stale_staging(outdir)
    staging = staging_path(outdir.absolute())
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        (staging / STAGING_MARKER).write_text(json.dumps({"format": "3dgp-export-staging", "pid": os.getpid()}))
    except OSError as exc:
        raise BadOptionError("--outdir", f"{outdir}: cannot write there ({exc.strerror or exc})") from None
    return staging


def discard_staging(staging: Path) -> None:
    """Delete a staging folder (an export that failed or was interrupted)."""
    shutil.rmtree(staging, ignore_errors=True)


def file_records(staging: Path) -> list[dict[str, Any]]:
    """``{path, sha256, bytes}`` of every file written so far under ``staging`` (sorted; the marker left out)."""
    files, _ = _tree(staging)
    return [{"path": rel, "sha256": sha256_file(staging / rel), "bytes": (staging / rel).stat().st_size}
            for rel in sorted(files - {STAGING_MARKER, MANIFEST_NAME})]


def write_manifest(staging: Path, snapshot: dict[str, Any], request: dict[str, Any]) -> Path:
    """Write ``export.json`` (snapshot, request, every file with its sha256) into the finished staging folder."""
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "snapshot": snapshot,
                "request": request, "files": file_records(staging)}
    path = staging / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish(staging: Path, outdir: Path) -> None:
    """Make the finished ``staging`` folder ``outdir``: a rename, or an atomic swap with the old export of ours
    (checked again: the export took time), which is then deleted."""
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    final = outdir.absolute()
    if final.exists() or final.is_symlink():
        reason = not_ours(final)
        if reason is not None:
            (staging / STAGING_MARKER).write_text("{}")  # still ours to clean up later
            raise BadOptionError("--outdir", f"{outdir} changed during the export and {reason}; the export is "
                                             f"complete in {staging}: move it where you want it")
    if not final.exists() or not any(final.iterdir()):
        if final.exists():
            final.rmdir()
        os.rename(staging, final)
        return
    if _exchange(staging, final):  # staging now holds the old export
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = staging.with_name(staging.name + _OLD_SUFFIX)
    os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)
