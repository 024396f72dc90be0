"""The ``imagenet`` source: the ILSVRC-2012 train layout, one folder per synset (3DGP ref §7.1, §7.2).

Labels come from the folders: label i is the i-th selected synset in sorted order (so the full set gives the
standard ImageNet class indices). ``--classes`` / ``--classes-file`` pick a subset; ``--synset-map``
(``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca``) adds human-readable descriptions to the meta
record. Per-class instance selection (``--keep-ratio``) happens later, in :mod:`stages.prep.selection_plan`.
"""
from __future__ import annotations

import re
from pathlib import Path

from stages.common.errors import BadFileError, BadOptionError
from stages.data.image_files import DEPTH_SUFFIX, Skipped, depth_name, image_extensions, walk_files
from stages.prep.sources.units import SourcePlan, Unit

_SYNSET = re.compile(r"^n\d{8}$")


def read_classes_file(path: Path) -> tuple[str, ...]:
    """Synset ids from a file: one per line, or comma/space separated; ``#`` starts a comment."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadFileError(path, f"--classes-file: cannot read it ({exc.strerror or exc})") from None
    words = [w for line in text.splitlines() for w in re.split(r"[,\s]+", line.split("#")[0]) if w]
    if not words:
        raise BadFileError(path, "--classes-file: lists no classes")
    return tuple(words)


def read_synset_map(path: Path) -> dict[str, str]:
    """``LOC_synset_mapping.txt`` -> {synset: description}."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BadFileError(path, f"--synset-map: cannot read it ({exc.strerror or exc})") from None
    mapping = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        synset, _, description = line.strip().partition(" ")
        if not _SYNSET.match(synset):
            raise BadFileError(path, f"--synset-map: line {number}: expected 'n01440764 description', got "
                               f"{line.strip()[:40]!r}")
        mapping[synset] = description.strip()
    return mapping


def _pick_synsets(root: Path, classes: tuple[str, ...] | None) -> list[str]:
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and _SYNSET.match(p.name))
    if not found:
        raise BadFileError(root, "holds no synset folders (expected n01440764/, n01443537/, ...)")
    if classes is None:
        return found
    missing = [c for c in classes if c not in found]
    if missing:
        raise BadOptionError("--classes", f"no folder for {', '.join(missing[:5])} under {root}")
    return sorted(set(classes))


def list_imagenet_units(
    root: Path,  # the train folder holding one folder per synset
    classes: tuple[str, ...] | None = None,  # synset subset (None = all)
    synset_map: Path | None = None,  # optional LOC_synset_mapping.txt
    max_per_class: int | None = None,  # keep the first N files (sorted) per class
) -> SourcePlan:
    """Enumerate ``root/<synset>/<image>`` files, labelled by synset index."""
    if not root.is_dir():
        raise BadFileError(root, "no such directory (expected the ILSVRC-2012 train folder)")
    synsets = _pick_synsets(root, classes)
    descriptions = read_synset_map(synset_map) if synset_map is not None else {}
    exts = image_extensions()
    units, skipped = [], []
    for label, synset in enumerate(synsets):
        names, special = walk_files(root / synset)
        skipped += [Skipped(f"{synset}/{s.source}", s.reason) for s in special]
        rels = set(names)
        images = [n for n in names if Path(n).suffix.lower() in exts and not n.endswith(DEPTH_SUFFIX)]
        for rel in images[:max_per_class]:
            depth_rel = depth_name(rel)
            depth = str(root / synset / depth_rel) if depth_rel in rels else None
            units.append(Unit("file", str(root / synset / rel), "", label, depth, f"{synset}/{rel}"))
    if not units:
        raise BadFileError(root, "the selected synset folders hold no images")
    description = {
        "kind": "imagenet",
        "path": str(root.resolve()),
        "num_images_found": len(units),
        "synsets": synsets,
        "class_descriptions": [descriptions.get(s, "") for s in synsets] if descriptions else None,
    }
    return SourcePlan("imagenet", units, synsets, any(u.depth_member for u in units), description, skipped)
