"""Output-directory handling that makes prep resumable and never leaves a half-written dataset (issue 3).

A prep builds ``OUT.partial/`` and renames it to ``OUT`` only after the meta record is in. The partial env stores
the run's fingerprint (``PrepConfig.prep_args``) under ``ARGS_KEY``: the same command resumes it; a different one is
refused with the differing options named, unless ``--overwrite``.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from stages.common.errors import BadFileError
from stages.data.format import ARGS_KEY, META_KEY
from stages.data.lmdb_store import DatasetWriter, read_meta, release_readonly
from stages.prep.config import PrepConfig, describe_differences

logger = logging.getLogger(__name__)


def partial_dir(out: Path) -> Path:
    """Where a dataset is built before it is published as ``out``."""
    return out.with_name(out.name + ".partial")


def _is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "data.mdb").is_file()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def check_existing_output(cfg: PrepConfig) -> dict[str, Any] | None:
    """Inspect ``cfg.out`` before any work. Returns the meta record when ``out`` is already the finished dataset of
    the same arguments (nothing to do). Raises BadFileError when ``out`` is something else and no --overwrite."""
    out = cfg.out
    if not out.exists():
        return None
    if not _is_dataset_dir(out):
        if out.is_dir() and not any(out.iterdir()):
            return None  # an empty folder is fine
        raise BadFileError(out, "exists and is not a 3dgp dataset; choose another output path")
    if cfg.overwrite:
        return None
    try:
        meta = read_meta(out)
    except BadFileError:
        raise BadFileError(out, "exists but is not a finished dataset; pass --overwrite to replace it") from None
    if meta["prep_args"] == cfg.prep_args():
        return meta
    diff = describe_differences(meta["prep_args"], cfg.prep_args())
    raise BadFileError(out, f"already exists, made with other arguments ({diff}); pass --overwrite to replace it")


def open_partial(cfg: PrepConfig) -> DatasetWriter:
    """Create or re-open ``OUT.partial``; a partial started with other arguments is an error naming them."""
    partial = partial_dir(cfg.out)
    if partial.exists() and (cfg.overwrite or not _is_dataset_dir(partial)):
        logger.info("discarding %s", partial)
        _remove(partial)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(partial.parent, os.W_OK):
            raise PermissionError(13, "Permission denied")
        writer = DatasetWriter(partial)
    except OSError as exc:
        raise BadFileError(cfg.out, f"cannot write the output ({exc.strerror or exc})") from None
    except Exception as exc:  # lmdb.Error subclasses are not OSErrors
        raise BadFileError(cfg.out, f"cannot write the output ({exc})") from None
    finished = writer.get_json(META_KEY)  # set when a crash hit between finishing and publishing
    started_with = finished["prep_args"] if finished else writer.get_json(ARGS_KEY)
    if started_with is None:
        writer.commit({}, {ARGS_KEY: cfg.prep_args()})
    elif started_with != cfg.prep_args():
        writer.close()
        diff = describe_differences(started_with, cfg.prep_args())
        raise BadFileError(
            partial, f"holds an unfinished prep with other arguments ({diff}); re-run that command to finish it, "
            "or pass --overwrite to start over"
        )
    return writer


def publish(cfg: PrepConfig) -> None:
    """Atomically move the finished ``OUT.partial`` to ``OUT`` (replacing an old dataset under --overwrite)."""
    partial, out = partial_dir(cfg.out), cfg.out
    if out.exists():  # an empty folder, or an old dataset under --overwrite (check_existing_output vetted it)
        release_readonly(out)
        _remove(out)
    os.replace(partial, out)
