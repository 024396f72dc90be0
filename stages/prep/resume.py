"""Output-directory handling that makes prep resumable, never leaves a half-written dataset (issue 3) and never
deletes what it cannot prove it wrote (issue 13 §1).

A prep builds ``OUT.partial/`` and renames it to ``OUT`` only after the meta record is in. The partial holds a
marker file (``.3dgp-dataset``, which moves with it to ``OUT``) and, in its LMDB, the run's fingerprint
(``PrepConfig.prep_args``) and the source's (:mod:`stages.prep.fingerprint`) under ``ARGS_KEY``: the same command on
the same source resumes it; other arguments are refused with the differing options named, a changed source is
refused, and either may be started over with ``--overwrite``.

Only a folder that is provably ours is ever deleted or replaced, even under ``--overwrite`` (issue 19 §2): it holds
our marker, nothing but the files prep writes, and an LMDB whose meta / arguments / progress records (those present)
are in our format; "an LMDB with a ``__meta__`` key" is not enough. An empty folder is reused. Anything else at
``OUT`` or ``OUT.partial`` (another program's LMDB, a user's folder or file, a symbolic link) is refused with one
line naming why, and left untouched. One process at a time preps an ``OUT`` (``<OUT>.lock``, :func:`lock_output`).
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
from stages.prep.report import REPORT_NAME

logger = logging.getLogger(__name__)
MARKER_NAME = ".3dgp-dataset"
_MARKER = {"format": "3dgp-dataset", "written_by": "3dgp prep"}
_OUR_FILES = frozenset({MARKER_NAME, "data.mdb", "lock.mdb", REPORT_NAME})  # all a prep ever writes in its folder
_NOT_OURS = "was not made by 3dgp prep ({reason}), so it is left alone; move it away or choose another output path"


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

    release_readonly(path)  # LMDB refuses a second env of the same files in one process (read_meta's is shared)
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _our_meta(meta: Any) -> bool:
    """A meta record of our format (any format version: an older dataset of ours is still ours to replace)."""
    return (isinstance(meta, dict) and _is_int(meta.get("format_version")) and isinstance(meta.get("prep_args"), dict)
            and isinstance(meta.get("source"), dict) and _is_int(meta.get("num_items"))
            and str(meta.get("prep_command", "")).startswith("3dgp prep"))


def _our_args(args: Any) -> bool:
    """The arguments record of an unfinished prep (``{"prep_args", "source_fingerprint"}``, or the bare arguments
    that partials written before source fingerprints hold)."""
    if not isinstance(args, dict):
        return False
    if "prep_args" in args:
        fingerprint = args.get("source_fingerprint")
        return isinstance(args["prep_args"], dict) and (fingerprint is None or isinstance(fingerprint, str))
    return isinstance(args.get("source"), str) and _is_int(args.get("resolution"))


def _our_progress(progress: Any) -> bool:
    return (isinstance(progress, dict) and _is_int(progress.get("next_unit")) and _is_int(progress.get("num_items"))
            and isinstance(progress.get("label_counts"), list))


def not_ours(path: Path) -> str | None:
    """Why the folder ``path`` cannot be proved to be a dataset (or unfinished dataset) of ours, or None when it is:
    our marker, nothing but the files prep writes, and our records' formats (module docstring; issue 19 §2)."""
    if not _has_marker(path):
        return f"no {MARKER_NAME} marker"
    extra = sorted(p.name for p in path.iterdir()
                   if p.name not in _OUR_FILES or p.is_symlink() or not p.is_file())
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        return f"it holds files prep does not write: {', '.join(extra[:3])}{more}"
    if not (path / "data.mdb").exists():
        return None  # killed between the marker and the first record
    records = _read_records(path, (META_KEY, ARGS_KEY, PROGRESS_KEY))
    if records is None:
        return "data.mdb is not an LMDB with JSON records of 3dgp's dataset format"
    checks = ((META_KEY, _our_meta), (ARGS_KEY, _our_args), (PROGRESS_KEY, _our_progress))
    bad = [key.decode() for key, ours in checks if key in records and not ours(records[key])]
    if bad:
        return f"its {', '.join(bad)} record{'s are' if len(bad) > 1 else ' is'} not in 3dgp's dataset format"
    return None


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output_paths(cfg: PrepConfig) -> None:
    """Before any work: refuse an ``OUT`` or ``OUT.partial`` that is a symbolic link, or a partial that is not ours."""
    for path in (cfg.out, partial_dir(cfg.out)):
        if path.is_symlink():
            raise BadFileError(path, "is a symbolic link; give the real folder, or remove the link")
    partial = partial_dir(cfg.out)
    if partial.exists() and not _is_empty_dir(partial):
        reason = not_ours(partial) if partial.is_dir() else "it is a file"
        if reason is not None:
            raise BadFileError(partial, _NOT_OURS.format(reason=reason))


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
        meta = None
    if meta is not None and not cfg.overwrite and _complete(cfg, meta, fingerprint):
        return meta  # the finished dataset of this very command: nothing to do (and nothing is touched)
    reason = not_ours(out)
    if reason is not None:
        raise BadFileError(out, _NOT_OURS.format(reason=reason))
    if cfg.overwrite:
        return None
    if meta is None:
        raise BadFileError(out, "exists but is not a finished dataset; pass --overwrite to replace it")
    if not args_match(meta["prep_args"], cfg.prep_args()):
        diff = describe_differences(meta["prep_args"], cfg.prep_args())
        raise BadFileError(out, f"already exists, made with other arguments ({diff}); pass --overwrite to replace it")
    if meta["source"].get("fingerprint", fingerprint) != fingerprint:
        raise BadFileError(out, f"already exists, made from an earlier state of {cfg.src} (files added, removed or "
                           "modified since); pass --overwrite to rebuild it from the current files")
    return meta


def _complete(cfg: PrepConfig, meta: dict[str, Any], fingerprint: str | None) -> bool:
    """Whether the (format-checked) meta record ``meta`` is that of this command on this source."""
    args, source = meta.get("prep_args"), meta.get("source")
    return (isinstance(args, dict) and isinstance(source, dict) and args_match(args, cfg.prep_args())
            and source.get("fingerprint", fingerprint) == fingerprint)


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
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadFileError(out, "appeared while the dataset was being built, and is not ours; move it away and run "
                                f"the same command again to publish {partial}")
    if out.is_dir():  # an empty folder, or our dataset under --overwrite (vetted above, and again here: the run
        # took time, and anything put there since is not ours to delete)
        reason = None if _is_empty_dir(out) else not_ours(out)
        if reason is not None:
            raise BadFileError(out, _NOT_OURS.format(reason=reason) + f"; then run the same command again to "
                                    f"publish {partial}")
        release_readonly(out)
        shutil.rmtree(out)
    os.replace(partial, out)
