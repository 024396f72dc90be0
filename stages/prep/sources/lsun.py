"""The ``lsun`` source: an LSUN LMDB export (keys are image ids, values encoded images, usually WebP).

The paper trains on a 40k subset of LSUN Horses (3DGP ref §12): ``--max-images 40000`` keeps the first N keys
in the LMDB's key order, which is deterministic for a given export.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import BadFileError
from stages.prep.sources.units import SourcePlan, Unit


def list_lsun_units(src: Path, max_images: int | None = None) -> SourcePlan:
    """Enumerate the keys of an LSUN export (a folder holding ``data.mdb``, or that file itself)."""
    import lmdb

    env_dir = src.parent if src.name == "data.mdb" else src
    if not (env_dir / "data.mdb").is_file():
        raise BadFileError(src, "not an LMDB export (expected a folder holding data.mdb)")
    try:
        env = lmdb.open(str(env_dir), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as exc:
        raise BadFileError(src, f"cannot open the LMDB ({exc})") from None
    keys: list[str] = []
    try:
        with env.begin() as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                keys.append(bytes(key).decode("latin-1"))
                if max_images is not None and len(keys) >= max_images:
                    break
    finally:
        env.close()
    if not keys:
        raise BadFileError(src, "the LMDB holds no entries")
    units = [Unit("lsun", str(env_dir.resolve()), key, None, None, key) for key in keys]
    description = {"kind": "lsun", "path": str(env_dir.resolve()), "num_images_found": len(units)}
    return SourcePlan("lsun", units, [], False, description)
