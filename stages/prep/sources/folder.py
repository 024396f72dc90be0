"""The ``folder`` / ``zip`` source: a folder or a .zip of images, recursive (3DGP ref §7.1).

Handles the official 3DGP dataset layout: ``<name>_depth.png`` beside each image (used as precomputed depth when
every image has one, see :mod:`stages.prep.models`), and one ``dataset.json`` anywhere with
``{"labels": [[relpath, int], ...]}`` (checked by :mod:`stages.prep.sources.labels`). Paths are relative to the
archive root, with a leading folder equal to the zip's (or folder's) basename stripped (the official
``remove_root``). Links, FIFOs and other special entries of a folder are skipped and reported
(:mod:`stages.prep.sources.walk`).
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from stages.common.errors import BadFileError
from stages.prep.sources.labels import parse_labels
from stages.prep.decode import Unreadable
from stages.prep.sources.units import Skipped, SourcePlan, Unit, read_zip_member
from stages.prep.sources.walk import walk_files

DEPTH_SUFFIX = "_depth.png"
LABELS_FILE = "dataset.json"


def image_extensions() -> set[str]:
    """Lower-case file extensions PIL can open (``.jpg``, ``.png``, ``.webp``, ...)."""
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _strip_root(relpaths: list[str], root: str) -> tuple[list[str], str]:
    """Drop a leading ``root/`` from every path when all of them carry it; returns (paths, prefix dropped)."""
    prefix = root + "/"
    if relpaths and all(p.startswith(prefix) for p in relpaths):
        return [p[len(prefix) :] for p in relpaths], prefix
    return relpaths, ""


def _list_files(src: Path) -> tuple[list[str], str, list[Skipped]]:
    """All file paths under ``src`` (a folder or a zip), '/'-separated and relative, the dropped root prefix, and
    the special entries skipped while listing a folder."""
    if src.is_dir():
        names, skipped = walk_files(src)
        names, prefix = _strip_root(names, src.name)
        return names, prefix, [Skipped(s.source[len(prefix):] if s.source.startswith(prefix) else s.source, s.reason)
                               for s in skipped]
    if not src.is_file():
        raise BadFileError(src, "not a regular file (expected a folder or a .zip of images)")
    try:
        with zipfile.ZipFile(src) as archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadFileError(src, f"not a readable zip file ({exc})") from None
    names, prefix = _strip_root(names, src.stem)
    return names, prefix, []


def _read_labels(src: Path, names: list[str], prefix: str, max_bytes: int, max_classes: int | None) -> dict[str, int] | None:
    """Labels from the (shallowest) ``dataset.json``, keyed by root-stripped relpath; None when there is none."""
    candidates = sorted((n for n in names if n.rsplit("/", 1)[-1] == LABELS_FILE), key=lambda n: (n.count("/"), n))
    if not candidates:
        return None
    where = f"{src}/{prefix + candidates[0]}"
    try:
        if src.is_dir():
            path = src / (prefix + candidates[0])
            if path.stat().st_size > max_bytes:
                raise BadFileError(where, f"larger than {max_bytes >> 20} MiB; raise --max-file-mb to read it")
            data = path.read_bytes()
        else:
            with zipfile.ZipFile(src) as archive:
                data = read_zip_member(archive, prefix + candidates[0], max_bytes)
        text = data.decode("utf-8")
    except Unreadable as exc:  # over --max-file-mb
        raise BadFileError(where, f"cannot read labels: {exc}") from None
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
        raise BadFileError(where, f"cannot read labels ({exc})") from None
    labels = parse_labels(text, where, max_classes)
    if labels is None:
        return None
    stripped, _ = _strip_root(list(labels), src.stem if src.is_file() else src.name)
    return dict(zip(stripped, labels.values()))


def list_folder_units(
    src: Path,  # a folder or a .zip
    kind: str,  # "folder" | "zip" (recorded in the meta record)
    max_images: int | None = None,  # keep the first N images in path order
    max_file_mb: int = 512,  # cap on dataset.json (and, in the workers, on each zip member)
    max_classes: int | None = None,  # dataset.json class limit (None: max(1000, labelled entries))
) -> SourcePlan:
    """Enumerate images (sorted by relpath, ``_depth.png`` excluded) with their depth files and labels."""
    if not src.exists():
        raise BadFileError(src, "no such file or directory")
    if not src.is_dir() and src.suffix.lower() != ".zip":
        raise BadFileError(src, "expected a folder or a .zip of images")
    names, prefix, skipped = _list_files(src)
    exts = image_extensions()
    name_set = set(names)
    images = [n for n in names if Path(n).suffix.lower() in exts and not n.endswith(DEPTH_SUFFIX)]
    if max_images is not None:
        images = images[:max_images]
    if not images:
        raise BadFileError(src, "contains no image files")
    labels = _read_labels(src, names, prefix, max_file_mb << 20, max_classes)
    units = []
    for rel in images:
        depth_rel = rel[: len(rel) - len(Path(rel).suffix)] + DEPTH_SUFFIX
        depth = depth_rel if depth_rel in name_set else None
        label = None if labels is None else labels.get(rel, -1)
        if src.is_dir():
            unit = Unit("file", str(src / (prefix + rel)), "", label, depth and str(src / (prefix + depth)), rel)
        else:
            unit = Unit("zip", str(src.resolve()), prefix + rel, label, depth and prefix + depth, rel)
        units.append(unit)
    num_classes = 0 if labels is None else max(labels.values(), default=-1) + 1
    description = {
        "kind": kind,
        "path": str(src.resolve()),
        "num_images_found": len(units),
        "labels_file": LABELS_FILE if labels is not None else None,
        "root_stripped": prefix.rstrip("/") or None,
    }
    return SourcePlan(
        kind=kind,
        units=units,
        class_names=[str(i) for i in range(num_classes)],
        has_precomputed_depth=any(u.depth_member for u in units),
        description=description,
        skipped=skipped,
    )
