"""LMDB access for the dataset format: a transactional writer and read-only helpers (3DGP ref §7.1).

The writer commits items together with the bookkeeping that makes a prep resumable in ONE transaction, so a
``kill -9`` leaves either the batch and its progress record, or neither. Torch-free.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from stages.common.errors import DataFormatError
from stages.data.format import ARGS_KEY, META_KEY, PLAN_PREFIX, PROGRESS_KEY, SKIP_PREFIX, check_meta

logger = logging.getLogger(__name__)
_INITIAL_MAP_SIZE = 1 << 30  # grows by doubling on MapFullError
_BOOKKEEPING = (PROGRESS_KEY, ARGS_KEY)
_SHARED_ENVS: dict[tuple[int, int, int], Any] = {}  # (pid, st_dev, st_ino of data.mdb) -> read-only env
_BOOKKEEPING_PREFIXES = (SKIP_PREFIX, PLAN_PREFIX)


def open_readonly(path: str | os.PathLike):
    """The process's shared read-only env of a dataset (no lock file; safe in many DataLoader workers).

    LMDB refuses to open the same files twice in one process, so envs are cached per (process, data file) and
    shared by every reader here (``read_meta``, ``LmdbDataset``, previews); a forked worker opens its own.
    """
    import lmdb

    path = Path(path)
    data_file = path / "data.mdb"
    if not data_file.is_file():
        if path.with_name(path.name + ".partial").is_dir():
            raise DataFormatError(path, "unfinished prep (see .partial); re-run the same `3dgp prep` command")
        raise DataFormatError(path, "not a 3dgp dataset (no data.mdb)")
    stat = data_file.stat()
    key = (os.getpid(), stat.st_dev, stat.st_ino)
    if key not in _SHARED_ENVS:
        _SHARED_ENVS[key] = lmdb.open(
            str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=512
        )
    return _SHARED_ENVS[key]


def _forget_inherited_envs() -> None:
    """In a forked child: close the envs inherited from the parent, so this process can open its own (py-lmdb
    refuses a second open of the same files, and an env must not be used across fork). Read-only and lock-free,
    closing only unmaps this process's view."""
    for key in list(_SHARED_ENVS):
        if key[0] != os.getpid():
            _SHARED_ENVS.pop(key).close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_envs)


def release_readonly(path: str | os.PathLike) -> None:
    """Close this process's shared read-only env of ``path`` (before the dataset is replaced or deleted)."""
    data_file = Path(path) / "data.mdb"
    if not data_file.is_file():
        return
    stat = data_file.stat()
    env = _SHARED_ENVS.pop((os.getpid(), stat.st_dev, stat.st_ino), None)
    if env is not None:
        env.close()


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a finished dataset's meta record (DataFormatError naming ``path`` otherwise)."""
    with open_readonly(path).begin() as txn:
        raw = txn.get(META_KEY)
    if raw is None:
        raise DataFormatError(path, "no meta record: the prep did not finish; re-run the same `3dgp prep` command")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise DataFormatError(path, "meta record is not valid JSON") from None
    return check_meta(meta, str(path))


class DatasetWriter:
    """Writes one dataset directory (an LMDB env) transactionally; re-opening continues where it stopped."""

    def __init__(
        self,
        path: str | os.PathLike,  # the env directory (created if missing)
    ):
        import lmdb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.path), map_size=_INITIAL_MAP_SIZE, subdir=True, meminit=False)
        self._env.set_mapsize(max(_INITIAL_MAP_SIZE, self._env.info()["map_size"]))

    def get_json(self, key: bytes) -> Any:
        """The JSON value stored under ``key``, or None."""
        with self._env.begin() as txn:
            raw = txn.get(key)
        return None if raw is None else json.loads(raw)

    def items_with_prefix(self, prefix: bytes) -> list[tuple[bytes, Any]]:
        """All (key, JSON value) pairs whose key starts with ``prefix``, in key order."""
        out = []
        with self._env.begin() as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    out.append((bytes(key), json.loads(value)))
        return out

    def commit(self, puts: dict[bytes, bytes], json_puts: dict[bytes, Any] | None = None) -> None:
        """Write ``puts`` (raw) and ``json_puts`` (JSON-encoded) in one transaction, growing the map if full."""
        import lmdb

        records = dict(puts)
        for key, value in (json_puts or {}).items():
            records[key] = json.dumps(value, separators=(",", ":")).encode()
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in records.items():
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                new_size = self._env.info()["map_size"] * 2
                logger.debug("LMDB map full; growing to %d bytes", new_size)
                self._env.set_mapsize(new_size)

    def finish(self, meta: dict[str, Any]) -> None:
        """Delete the bookkeeping keys and write the meta record LAST, in one transaction; then sync."""
        check_meta(meta, str(self.path))
        with self._env.begin(write=True) as txn:
            cursor = txn.cursor()
            for key in _BOOKKEEPING:
                txn.delete(key)
            for prefix in _BOOKKEEPING_PREFIXES:
                while cursor.set_range(prefix) and cursor.key().startswith(prefix):
                    cursor.delete()
            txn.put(META_KEY, json.dumps(meta, separators=(",", ":")).encode())
        self._env.sync(True)

    def close(self) -> None:
        """Close the env (idempotent)."""
        if self._env is not None:
            self._env.close()
            self._env = None
