"""``dataset.json`` labels of a folder / zip source, checked strictly (3DGP ref §7.1; issue 13 §3, §4).

The file is ``{"labels": [[relpath, label], ...]}`` (``"labels": null`` = unlabelled). Every label must be a
non-negative integer (``1.5``, ``"3"``, ``true`` and ``-1`` are errors, never coerced), every relpath a string
listed once, and the class count (largest label + 1) may not exceed ``max(1000, number of entries)`` unless
``--max-classes`` allows more: a single stray label of 3,000,000 would otherwise create 3,000,001 classes.
"""
from __future__ import annotations

import json
from typing import Any

from stages.common.errors import BadFileError

MIN_CLASS_LIMIT = 1000  # the default class limit is max(this, number of labelled entries)


def parse_labels(text: str, where: str, max_classes: int | None = None) -> dict[str, int] | None:
    """``{relpath: label}`` from the text of a ``dataset.json`` (``where`` names it in errors); None = unlabelled."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise BadFileError(where, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BadFileError(where, 'expected an object {"labels": [[relpath, int], ...]}')
    entries = record.get("labels")
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise BadFileError(where, f'"labels" must be a list of [relpath, int] pairs, got {type(entries).__name__}')
    labels: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        rel, label = _entry(entry, i, where)
        if rel in first_seen:
            raise BadFileError(where, f"entry {i}: {rel!r} is listed twice (entries {first_seen[rel]} and {i})")
        first_seen[rel] = i
        labels[rel] = label
    _check_class_count(labels, where, max_classes)
    return labels


def _entry(entry: Any, i: int, where: str) -> tuple[str, int]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise BadFileError(where, f"entry {i}: expected [relpath, int], got {_short(entry)}")
    rel, label = entry
    if not isinstance(rel, str) or not rel:
        raise BadFileError(where, f"entry {i}: the path must be a non-empty string, got {_short(rel)}")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise BadFileError(where, f"entry {i}: the label of {rel!r} must be a non-negative integer, got {_short(label)}")
    return rel.replace("\\", "/"), label


def _check_class_count(labels: dict[str, int], where: str, max_classes: int | None) -> None:
    if not labels:
        return
    largest = max(labels.values())
    from stages.prep.config import MAX_CLASSES

    limit = max_classes if max_classes is not None else min(max(MIN_CLASS_LIMIT, len(labels)), MAX_CLASSES)
    if largest + 1 > limit:
        rel = next(r for r, label in labels.items() if label == largest)
        fix = (f"pass --max-classes {largest + 1} if that many classes is right" if largest + 1 <= MAX_CLASSES else
               f"a model takes at most {MAX_CLASSES:,} classes")
        raise BadFileError(
            where, f"label {largest:,} of {rel!r} would make {largest + 1:,} classes for {len(labels):,} labelled "
            f"files (limit {limit:,}); fix the label, or {fix}"
        )


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, tuple) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
