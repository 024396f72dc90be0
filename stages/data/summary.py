"""A JSON-ready summary of a finished dataset, for ``3dgp info`` (torch-free)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stages.data.lmdb_store import read_meta


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a dataset directory (finished or not): a folder holding ``data.mdb``."""
    return (Path(path) / "data.mdb").is_file()


def dataset_summary(path: str | os.PathLike) -> dict[str, Any]:
    """The meta record plus derived fields: ``kind``, ``path``, ``has_depth``, ``embedding_dim``,
    ``num_classes``, ``size_bytes`` (3DGP ref §7.1). Raises DataFormatError for unfinished/invalid datasets."""
    path = Path(path)
    meta = read_meta(path)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return {
        "kind": "dataset",
        "path": str(path),
        "num_items": meta["num_items"],
        "resolution": meta["resolution"],
        "has_depth": meta["depth"] is not None,
        "has_labels": bool(meta["class_names"]),
        "num_classes": len(meta["class_names"]),
        "embedding_dim": int(meta["embedder"]["dim"]) if meta["embedder"] else 0,
        "size_bytes": size,
        "meta": meta,
    }
