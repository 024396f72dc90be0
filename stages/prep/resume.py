"""Output-directory handling that makes prep resumable, never leaves a half-written dataset (issue 3) and never
deletes what it cannot prove it wrote (issue 13 §1).

A prep builds ``OUT.partial/`` and renames it to ``OUT`` only after the meta record is in. The partial holds a
marker file (``.3dgp-dataset``, which moves with it to ``OUT``) and, in its LMDB, the run's fingerprint
(``PrepConfig.prep_args``) and the source's (:mod:`stages.prep.fingerprint`) under ``ARGS_KEY``: the same command on
the same source resumes it; other arguments are refused with the differing options named, a changed source is
refused, and either may be started over with ``--overwrite``.

Only a folder with our marker or our own records (a meta, progress or arguments record) is ever deleted or
replaced, even under ``--overwrite``; an empty folder is reused. Anything else at ``OUT`` or ``OUT.partial`` (a
user's folder, a file, a symbolic link) is refused with one line. One process at a time preps an ``OUT``
(``<OUT>.lock``, :func:`lock_output`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.errors import BadFileError
from stages.common.lockfile import FileLock
from stages.data.format import ARGS_KEY, META_KEY, PROGRESS_KEY
from stages.data.lmdb_store import DatasetWriter, read_meta, release_readonly
from stages.prep.config import PrepConfig, args_match, describe_differences

logger = logging.getLogger(__name__)
MARKER_NAME = ".3dgp-dataset"
_MARKER = {"format": "3dgp-dataset", "written_by": "3dgp prep"}
_NOT_OURS = "was not made by 3dgp prep (no {marker} marker or prep records), so it is left alone; move it away or " \
            "choose another output path"


def partial_dir(out: Path) -> Path:
    """Where a dataset is built before it is published as ``out``."""
    return out.with_name(out.name + ".partial")


def _is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "data.mdb").is_file()


def _has_marker(path: Path) -> bool:
    marker = path / MARKER_NAME
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return False
        return json.loads(marker.read_text()).get("format") == _MARKER["format"]
    except (OSError, ValueError, AttributeError):
        return False


def _read_records(path: Path, keys: tuple[bytes, ...]) -> dict[bytes, Any] | None:
    """The JSON records ``keys`` of the LMDB at ``path`` (absent ones left out), read-only and writing nothing;
    None when ``path/data.mdb`` is not a readable LMDB."""
    data = path / "data.mdb"
    if data.is_symlink() or not data.is_file():
        return None
    import lmdb

    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error:
        return None
    try:
        with env.begin() as txn:
            raw = {key: txn.get(key) for key in keys}
        return {key: json.loads(value) for key, value in raw.items() if value is not None}
    except (lmdb.Error, ValueError):
        return None
    finally:
        env.close()


def _has_our_records(path: Path) -> bool:
    """Whether ``path/data.mdb`` is an LMDB holding one of our meta / progress / arguments records."""
    return bool(_read_records(path, (META_KEY, PROGRESS_KEY, ARGS_KEY)))


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output_paths(cfg: PrepConfig) -> None:
    """Before any work: refuse an ``OUT`` or ``OUT.partial`` that is a symbolic link, or a partial that is not ours."""
    for path in (cfg.out, partial_dir(cfg.out)):
        if path.is_symlink():
            raise BadFileError(path, "is a symbolic link; give the real folder, or remove the link")
    partial = partial_dir(cfg.out)
    if partial.exists() and not _is_empty_dir(partial) and not (partial.is_dir() and _owned(partial)):
        raise BadFileError(partial, _NOT_OURS.format(marker=MARKER_NAME))


def lock_output(cfg: PrepConfig) -> FileLock:
    """Hold ``<OUT>.lock`` (removed on release) while this process preps ``OUT``: a second `3dgp prep` of the same
    output is refused with one line instead of interleaving its items (issue 13 §2)."""
    lock = cfg.out.with_name(cfg.out.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        return FileLock.acquire(lock, "another `3dgp prep` ({holder}) is writing this dataset", subject=cfg.out,
                                unlink_on_release=True)
    except OSError as exc:
        raise BadFileError(cfg.out, f"cannot write the output ({exc.strerror or exc})") from None


def _owned(path: Path) -> bool:
    return _has_marker(path) or _has_our_records(path)


def check_existing_output(cfg: PrepConfig, fingerprint: str | None) -> dict[str, Any] | None:
    """Inspect ``cfg.out`` before any work. Returns the meta record when ``out`` is already the finished dataset of
    the same arguments and source (nothing to do). Raises BadFileError when ``out`` is something else, unless it is
    ours and --overwrite says to replace it."""
    out = cfg.out
    if not out.exists():
        return None
    if out.is_dir() and _is_empty_dir(out):
        return None  # an empty folder is fine
    if not _is_dataset_dir(out):
        raise BadFileError(out, "exists and is not a 3dgp dataset; choose another output path")
    try:
        meta = read_meta(out)
    except BadFileError:
        if not _has_marker(out):
            raise BadFileError(out, "exists and is not a 3dgp dataset; choose another output path") from None
        if cfg.overwrite:
            return None
        raise BadFileError(out, "exists but is not a finished dataset; pass --overwrite to replace it") from None
    if cfg.overwrite:
        return None
    if not args_match(meta["prep_args"], cfg.prep_args()):
        diff = describe_differences(meta["prep_args"], cfg.prep_args())
        raise BadFileError(out, f"already exists, made with other arguments ({diff}); pass --overwrite to replace it")
    if meta["source"].get("fingerprint", fingerprint) != fingerprint:
        raise BadFileError(out, f"already exists, made from an earlier state of {cfg.src} (files added, removed or "
                           "modified since); pass --overwrite to rebuild it from the current files")
    return meta


def open_partial(cfg: PrepConfig, fingerprint: str | None) -> DatasetWriter:
    """Create or re-open ``OUT.partial``; a partial started with other arguments, or on a source that changed since,
    is an error naming the difference (start over with --overwrite)."""
    partial = partial_dir(cfg.out)
    check_output_paths(cfg)  # again: the listing and model loading took time (the partial's records cannot have
    # changed since check_partial: this process holds the output lock)
    if partial.exists() and not _is_empty_dir(partial) and (cfg.overwrite or not _is_dataset_dir(partial)):
        logger.info("discarding %s", partial)
        shutil.rmtree(partial)  # ours: check_output_paths proved it
    try:
        partial.mkdir(parents=True, exist_ok=True)
        if not os.access(partial, os.W_OK):
            raise PermissionError(13, "Permission denied")
        (partial / MARKER_NAME).write_text(json.dumps(_MARKER) + "\n")  # before any record: proves the folder ours
        writer = DatasetWriter(partial)
    except OSError as exc:
        raise BadFileError(cfg.out, f"cannot write the output ({exc.strerror or exc})") from None
    except Exception as exc:  # lmdb.Error subclasses are not OSErrors
        raise BadFileError(cfg.out, f"cannot write the output ({exc})") from None
    if writer.get_json(META_KEY) is None and writer.get_json(ARGS_KEY) is None:  # a new partial
        writer.commit({}, {ARGS_KEY: {"prep_args": cfg.prep_args(), "source_fingerprint": fingerprint}})
    return writer


@dataclass(frozen=True)
class PartialState:
    """What an existing ``OUT.partial`` holds: read once, read-only, before any work (:func:`read_partial_state`)."""

    path: Path
    started: dict[str, Any] | None  # {"prep_args", "source_fingerprint"} it was started with; None = nothing yet
    finished_meta: dict[str, Any] | None  # the meta record when a run finished but was killed before publishing
    next_unit: int  # inputs already done


_LEGACY = object()  # the source fingerprint of a partial written before source fingerprints existed


def read_partial_state(cfg: PrepConfig) -> PartialState | None:
    """The state of ``OUT.partial``, or None when there is nothing to resume (no partial, a symbolic link, or
    ``--overwrite``, which starts over)."""
    partial = partial_dir(cfg.out)
    if cfg.overwrite or partial.is_symlink() or not _is_dataset_dir(partial):
        return None
    records = _read_records(partial, (META_KEY, ARGS_KEY, PROGRESS_KEY)) or {}
    finished = records.get(META_KEY)
    if finished is not None:
        started = {"prep_args": finished["prep_args"], "source_fingerprint": finished["source"].get("fingerprint")}
    else:
        started = records.get(ARGS_KEY)
        if started is not None and "prep_args" not in started:  # written before source fingerprints existed
            started = {"prep_args": started, "source_fingerprint": _LEGACY}
    try:
        next_unit = int((records.get(PROGRESS_KEY) or {}).get("next_unit", 0))
    except (AttributeError, TypeError, ValueError):
        next_unit = 0
    return PartialState(partial, started, finished, next_unit)


def check_partial(cfg: PrepConfig, fingerprint: str | None, state: PartialState | None) -> None:
    """Refuse to resume an ``OUT.partial`` started with other arguments or on a source that has changed since;
    nothing to check without a partial, under --overwrite, or when it was killed before its arguments were in."""
    if state is None or state.started is None:
        return
    started, partial = state.started, state.path
    if not args_match(started["prep_args"], cfg.prep_args()):
        diff = describe_differences(started["prep_args"], cfg.prep_args())
        raise BadFileError(
            partial, f"holds an unfinished prep with other arguments ({diff}); re-run that command to finish it, "
            "or pass --overwrite to start over"
        )
    stored = started.get("source_fingerprint")
    if stored is _LEGACY:  # unknown: only a source without a fingerprint (toy) can be trusted to be the same
        changed = fingerprint is not None
    else:
        changed = stored != fingerprint
    if changed:
        raise BadFileError(
            cfg.src or partial, f"changed since the unfinished prep in {partial} was started (files added, removed "
            "or modified); restore it and run the same command, or pass --overwrite to start over from the current files"
        )


def publish(cfg: PrepConfig) -> None:
    """Atomically move the finished ``OUT.partial`` to ``OUT`` (replacing an old dataset under --overwrite)."""
    partial, out = partial_dir(cfg.out), cfg.out
    if out.is_dir() and not out.is_symlink():  # an empty folder, or our dataset under --overwrite (vetted above)
        release_readonly(out)
        shutil.rmtree(out)
    os.replace(partial, out)
