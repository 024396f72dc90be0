"""The ``folder`` / ``zip`` source: a folder or a .zip of images, recursive (3DGP ref §7.1).

Handles the official 3DGP dataset layout: ``<name>_depth.png`` beside each image (used as precomputed depth),
and one ``dataset.json`` anywhere with ``{"labels": [[relpath, int], ...]}``. Paths are relative to the archive
root, with a leading folder equal to the zip's (or folder's) basename stripped (the official ``remove_root``).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from stages.common.errors import BadFileError
from stages.prep.sources.units import SourcePlan, Unit

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


def _list_files(src: Path) -> tuple[list[str], str]:
    """All file paths under ``src`` (a folder or a zip), '/'-separated and relative, plus the dropped root prefix."""
    if src.is_dir():
        names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        return _strip_root(names, src.name)
    try:
        with zipfile.ZipFile(src) as archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadFileError(src, f"not a readable zip file ({exc})") from None
    return _strip_root(names, src.stem)


def _read_labels(src: Path, names: list[str], prefix: str) -> dict[str, int] | None:
    """Labels from the (shallowest) ``dataset.json``, keyed by root-stripped relpath; None when there is none."""
    candidates = sorted((n for n in names if n.rsplit("/", 1)[-1] == LABELS_FILE), key=lambda n: (n.count("/"), n))
    if not candidates:
        return None
    where = candidates[0]
    try:
        if src.is_dir():
            text = (src / (prefix + where)).read_text()
        else:
            with zipfile.ZipFile(src) as archive:
                text = archive.read(prefix + where).decode()
        labels = json.loads(text).get("labels")
    except (OSError, ValueError, AttributeError) as exc:
        raise BadFileError(f"{src}/{where}", f"cannot read labels ({exc})") from None
    if labels is None:
        return None
    try:
        pairs = {str(rel).replace("\\", "/"): int(label) for rel, label in labels}
    except (TypeError, ValueError):
        raise BadFileError(f"{src}/{where}", 'expected {"labels": [[relpath, int], ...]}') from None
    stripped, _ = _strip_root(list(pairs), src.stem if src.is_file() else src.name)
    return dict(zip(stripped, pairs.values()))


def list_folder_units(src: Path, kind: str, max_images: int | None = None) -> SourcePlan:
    """Enumerate images (sorted by relpath, ``_depth.png`` excluded) with their depth files and labels."""
    if not src.exists():
        raise BadFileError(src, "no such file or directory")
    if not src.is_dir() and src.suffix.lower() != ".zip":
        raise BadFileError(src, "expected a folder or a .zip of images")
    names, prefix = _list_files(src)
    exts = image_extensions()
    name_set = set(names)
    images = [n for n in names if Path(n).suffix.lower() in exts and not n.endswith(DEPTH_SUFFIX)]
    if max_images is not None:
        images = images[:max_images]
    if not images:
        raise BadFileError(src, "contains no image files")
    labels = _read_labels(src, names, prefix)
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
    )
