"""The ``folder`` / ``zip`` source: a folder or a .zip of images, recursive (3DGP ref §7.1).

Handles the official 3DGP dataset layout: ``<name>_depth.png`` beside each image (used as precomputed depth when
every image has one, see :mod:`stages.prep.models`), and one ``dataset.json`` anywhere with
``{"labels": [[relpath, int], ...]}`` (checked by :mod:`stages.prep.sources.labels`). The listing itself (paths
relative to the archive root with a leading folder equal to the zip's or folder's basename stripped, the official
``remove_root``; links, FIFOs and other special entries of a folder skipped and reported) is
:func:`stages.data.image_files.list_image_files`, which ``3dgp eval`` uses too.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from stages.common.errors import BadFileError
from stages.data.decode import Unreadable
from stages.data.image_files import list_image_files, read_archive_member, strip_root
from stages.prep.sources.labels import parse_labels
from stages.prep.sources.units import SourcePlan, Unit

LABELS_FILE = "dataset.json"


def _read_labels(src: Path, names: list[str], prefix: str, max_bytes: int,
                 max_classes: int | None) -> dict[str, int] | None:
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
                data = read_archive_member(archive, prefix + candidates[0], max_bytes)
        text = data.decode("utf-8")
    except Unreadable as exc:  # over --max-file-mb
        raise BadFileError(where, f"cannot read labels: {exc}") from None
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
        raise BadFileError(where, f"cannot read labels ({exc})") from None
    labels = parse_labels(text, where, max_classes)
    if labels is None:
        return None
    stripped, _ = strip_root(list(labels), src.stem if src.is_file() else src.name)
    return dict(zip(stripped, labels.values()))


def list_folder_units(
    src: Path,  # a folder or a .zip
    kind: str,  # "folder" | "zip" (recorded in the meta record)
    max_images: int | None = None,  # keep the first N images in path order
    max_file_mb: int = 512,  # cap on dataset.json (and, in the workers, on each zip member)
    max_classes: int | None = None,  # dataset.json class limit (None: max(1000, labelled entries))
) -> SourcePlan:
    """Enumerate images (sorted by relpath, ``_depth.png`` excluded) with their depth files and labels."""
    listing = list_image_files(src, max_images)
    labels = _read_labels(src, listing.names, listing.prefix, max_file_mb << 20, max_classes)
    unit_kind = "zip" if listing.is_zip else "file"
    units = [Unit(unit_kind, image.path, image.member, None if labels is None else labels.get(image.rel, -1),
                  image.depth, image.rel) for image in listing.images]
    num_classes = 0 if labels is None else max(labels.values(), default=-1) + 1
    description = {
        "kind": kind,
        "path": str(src.resolve()),
        "num_images_found": len(units),
        "labels_file": LABELS_FILE if labels is not None else None,
        "root_stripped": listing.prefix.rstrip("/") or None,
    }
    return SourcePlan(
        kind=kind,
        units=units,
        class_names=[str(i) for i in range(num_classes)],
        has_precomputed_depth=any(u.depth_member for u in units),
        description=description,
        skipped=listing.skipped,
    )
