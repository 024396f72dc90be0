"""A dataset's identity, and the dataset a run was trained on (issue 19 §3: paths resolve once, at the start).

The fingerprint of a prepped dataset is the sha256 of its meta record. The record holds the prep command, the source,
the counts, the models and the creation time, so it changes with every prep that (re)writes the dataset and stays the
same when the folder is copied or moved. A run stores its dataset as an absolute path plus this fingerprint
(``data.path`` and ``data.meta_sha256`` of ``config.json``, of every training state and of every snapshot), so a
run resumed or evaluated from another folder never picks up whatever dataset happens to have the same relative
name there.

Public API:
  meta_fingerprint(meta) -> str                          sha256 hex of a decoded meta record
  dataset_fingerprint(path) -> str                       the same, read from a dataset folder (DataFormatError)
  resolve_run_dataset(config, data_override, strict_override=False) -> (absolute path, fingerprint or None)
  check_run_dataset(config, data_override) -> str        the absolute dataset path to use (BadOptionError: one line)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.common.errors import BadFileError, BadOptionError

logger = logging.getLogger(__name__)
_WARNED: set[str] = set()  # paths already warned about (warn once per process)


def meta_fingerprint(meta: dict[str, Any]) -> str:
    """sha256 hex of a dataset's decoded meta record (keys sorted, so the stored key order does not matter)."""
    blob = json.dumps(meta, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def dataset_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint of the finished dataset at ``path`` (``DataFormatError`` when it is not one)."""
    from stages.data.lmdb_store import read_meta

    return meta_fingerprint(read_meta(Path(path)))


def _short(fingerprint: str | None) -> str:
    return (fingerprint or "none")[:12]


def _warn_once(key: str, message: str, warn=None) -> None:
    """Log ``message`` as a warning once per process (or hand it to ``warn``, which decides itself)."""
    if warn is not None:
        warn(message)
    elif key not in _WARNED:
        _WARNED.add(key)
        logger.warning("%s", message)


def _fingerprint_or_none(path: str) -> tuple[str | None, str]:
    """(fingerprint, '') of the dataset at ``path``, or (None, why it cannot be read)."""
    if not Path(path).exists():
        return None, "no longer exists"
    try:
        return dataset_fingerprint(path), ""
    except (BadFileError, OSError) as exc:
        reason = exc.message if isinstance(exc, BadFileError) else str(exc)
        return None, f"cannot be read ({reason})"
    except Exception as exc:  # noqa: BLE001 - e.g. lmdb.Error on a folder that is not an LMDB
        return None, f"cannot be read ({type(exc).__name__})"


def _check_override(override: str, recorded_fp: str | None, strict: bool, warn=None) -> tuple[str, str | None]:
    """``--data`` given: its absolute path and fingerprint (None for a folder that is not a prepped dataset)."""
    path = os.path.abspath(os.path.expanduser(override))
    if not Path(path).exists():
        raise BadOptionError("--data", f"{override}: no such dataset directory")
    fingerprint, why = _fingerprint_or_none(path)
    if strict and fingerprint is None:
        raise BadOptionError("--data", f"{override}: not a dataset written by `3dgp prep` ({why})")
    if fingerprint is not None and recorded_fp is not None and fingerprint != recorded_fp:
        message = (f"{override} is not the dataset the run was trained on (fingerprint {_short(fingerprint)}, the "
                   f"run's {_short(recorded_fp)})")
        if strict:
            raise BadOptionError("--data", f"{message}; to continue training on it anyway add --force-override")
        _warn_once(f"other:{path}", f"--data: {message}; using it as asked", warn)
    return path, fingerprint


def resolve_run_dataset(config: dict[str, Any], data_override: str | None, strict_override: bool = False,
                        warn: Callable[[str], None] | None = None) -> tuple[str, str | None]:
    """The dataset a run (or one of its checkpoints) uses, from its stored ``config`` dict: (absolute path, its
    fingerprint; None when unknown: an image folder given as ``--data``).

    Without ``data_override`` the recorded path must exist and hold the recorded fingerprint; a run from before
    fingerprints (or with a relative path) is accepted with one warning. ``data_override`` (``--data``) replaces the
    recorded path; a different fingerprint is a warning, or with ``strict_override`` (resume) an error. Errors are
    one ``BadOptionError('--data', ...)`` line saying what is wrong and how to point at the right dataset. Warnings
    are logged once per process, or handed to ``warn`` (a caller that logs them only once its start is accepted)."""
    data = config.get("data") if isinstance(config, dict) else None
    data = data if isinstance(data, dict) else {}
    recorded, recorded_fp = str(data.get("path") or ""), data.get("meta_sha256") or None
    if data_override:
        return _check_override(str(data_override), recorded_fp, strict_override, warn)
    if not recorded:
        raise BadOptionError("--data", "the run records no dataset; pass --data PATH")
    path = os.path.abspath(os.path.expanduser(recorded))
    if not os.path.isabs(recorded):
        _warn_once(f"relative:{recorded}", f"the run records its dataset as the relative path {recorded!r} (a run "
                                           f"from before absolute paths): using {path}, relative to the current "
                                           f"folder", warn)
    fingerprint, why = _fingerprint_or_none(path)
    if fingerprint is None:
        raise BadOptionError("--data", f"the run's dataset {path} {why}; pass --data PATH to where that dataset "
                                       f"is now")
    if recorded_fp is None:
        _warn_once(f"nofp:{path}", f"the run records no fingerprint of its dataset (a run from before "
                                   f"fingerprints): cannot check that {path} is the dataset it was trained on", warn)
    elif fingerprint != recorded_fp:
        raise BadOptionError("--data", f"the dataset at {path} is not the one the run was trained on (fingerprint "
                                       f"{_short(fingerprint)}, the run's {_short(recorded_fp)}: re-prepped or "
                                       f"replaced); pass --data PATH to the run's dataset")
    return path, fingerprint


def check_run_dataset(config: dict[str, Any], data_override: str | None) -> str:
    """The absolute path of the dataset to use for a run's stored ``config`` dict (``config.json``, or the
    ``config`` of a snapshot or training state) and an optional ``--data`` override; ``BadOptionError`` (one line)
    when the recorded dataset is gone or is not the one trained on. See :func:`resolve_run_dataset`."""
    return resolve_run_dataset(config, data_override)[0]
