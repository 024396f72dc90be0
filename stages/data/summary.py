"""What a finished dataset is, as one typed record: :class:`DatasetSummary` (torch-free).

``3dgp info DATASET`` renders it and ``3dgp prep`` reports it after a run (``PrepResult.summary``), so neither
command reads the meta record's layout (``stages.data.format``) itself.

Public API:
  is_dataset_dir(path) -> bool
  dataset_summary(path) -> DatasetSummary             (reads the meta record; DataFormatError when unfinished)
  DatasetSummary.from_meta(path, meta, size_bytes) -> DatasetSummary
  DatasetSummary.to_json() -> dict                     (what ``3dgp info --json`` prints)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.data.lmdb_store import read_meta


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a dataset directory (finished or not): a folder holding ``data.mdb``."""
    return (Path(path) / "data.mdb").is_file()


@dataclass(frozen=True)
class DatasetSummary:
    """A finished dataset (3DGP ref §7.1): sizes, depth model, labels, embedder, provenance."""

    path: str                           # the dataset folder
    num_items: int                      # stored items (x-flips are not stored)
    resolution: int                     # square image side
    depth_model: str | None             # depth model name ("toy", "precomputed", "leres", ...); None = no depth
    depth_output_kind: str | None       # what the model outputs ("depth", "disparity", ...)
    depth_version: str | None
    depth_weights_sha256: str | None
    has_depth_gt: bool                  # items carry ground-truth depth (toy)
    class_names: tuple[str, ...]        # () when unlabelled
    embedder_name: str | None           # classifier whose embeddings are stored; None = no embedding
    embedding_dim: int                  # 0 without an embedder
    embedder_weights_sha256: str | None
    source: dict[str, Any]              # the source record (kind, paths, counts)
    num_skipped: int                    # inputs skipped during prep (see prep_report.json)
    prep_command: str                   # the command line that built it
    created: str                        # ISO time
    code_version: str                   # 3dgp version that built it
    format_version: int
    size_bytes: int                     # files directly in the folder
    meta: dict[str, Any]                # the raw meta record (for --json and for tools that need all of it)

    kind = "dataset"

    @property
    def has_depth(self) -> bool:
        return self.depth_model is not None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def from_meta(cls, path: str | os.PathLike, meta: dict[str, Any], size_bytes: int) -> "DatasetSummary":
        depth, embedder = meta["depth"] or {}, meta["embedder"] or {}
        return cls(
            path=str(path), num_items=int(meta["num_items"]), resolution=int(meta["resolution"]),
            depth_model=depth.get("name"), depth_output_kind=depth.get("output_kind"),
            depth_version=depth.get("version"), depth_weights_sha256=depth.get("weights_sha256"),
            has_depth_gt=bool(meta["has_depth_gt"]), class_names=tuple(meta["class_names"] or ()),
            embedder_name=embedder.get("name"), embedding_dim=int(embedder.get("dim") or 0),
            embedder_weights_sha256=embedder.get("weights_sha256"), source=dict(meta["source"] or {}),
            num_skipped=int(meta["num_skipped"]), prep_command=str(meta["prep_command"]),
            created=str(meta["created"]), code_version=str(meta["code_version"]),
            format_version=int(meta["format_version"]), size_bytes=int(size_bytes), meta=meta,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (stable keys for scripts): derived fields plus the whole meta record."""
        return {
            "kind": self.kind, "path": self.path, "num_items": self.num_items, "resolution": self.resolution,
            "has_depth": self.has_depth, "has_labels": bool(self.class_names), "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim, "size_bytes": self.size_bytes, "meta": self.meta,
        }


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of the files directly in ``path``."""
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def dataset_summary(path: str | os.PathLike) -> DatasetSummary:
    """The summary of the finished dataset at ``path``; raises DataFormatError for unfinished/invalid datasets."""
    return DatasetSummary.from_meta(path, read_meta(Path(path)), folder_size(path))
