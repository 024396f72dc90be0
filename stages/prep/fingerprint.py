"""A fingerprint of a source's current state, so that a resumed prep never mixes two versions of the input.

An interrupted prep stores it with its arguments in ``OUT.partial``; the rerun recomputes it and refuses when it
differs (a file added, removed, renamed or modified since: the committed items would no longer line up with the
listing). The finished dataset keeps it in ``meta["source"]["fingerprint"]``, so rerunning the same command on a
changed source says so instead of "already complete".

What goes in: every input's listed path, label and depth file, plus size and modification time of each file on
disk (CRC and size of each zip member; size and time of an LSUN ``data.mdb``), the class names and the entries
skipped while listing. The toy source needs none: its arguments determine it (None).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile

from stages.prep.sources.units import SourcePlan


def _stat(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def source_fingerprint(plan: SourcePlan) -> str | None:
    """sha256 hex digest of the source's listing and file states (None for the toy source)."""
    if plan.kind == "toy":
        return None
    digest = hashlib.sha256()
    digest.update(json.dumps([plan.class_names, [tuple(s.__dict__.values()) for s in plan.skipped]]).encode())
    zips: dict[str, dict] = {}
    envs: dict[str, tuple[int, int] | None] = {}
    for unit in plan.units:
        if unit.kind == "file":
            state = (_stat(unit.container), _stat(unit.depth_member))
        elif unit.kind == "zip":
            members = zips.get(unit.container)
            if members is None:
                members = zips[unit.container] = _zip_members(unit.container)
            state = (members.get(unit.member), members.get(unit.depth_member))
        elif unit.kind == "lsun":
            if unit.container not in envs:
                envs[unit.container] = _stat(os.path.join(unit.container, "data.mdb"))
            state = envs[unit.container]
        else:
            raise AssertionError(unit.kind)
        digest.update(json.dumps([unit.source, unit.member, unit.label, unit.depth_member, state]).encode())
    return digest.hexdigest()


def _zip_members(path: str) -> dict[str, tuple[int, int]]:
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: (info.CRC, info.file_size) for info in archive.infolist()}
    except (OSError, zipfile.BadZipFile):
        return {}
