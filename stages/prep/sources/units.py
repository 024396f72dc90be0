"""Work units and the worker-side loader shared by every prep source (3DGP ref §7.1, §7.4).

A ``Unit`` is a small picklable record naming one input (a file, a zip member, an LSUN key or a toy scene);
``load_unit`` turns it into a ``Loaded`` item (image + optional depth + label) or a ``Skipped`` one. Runs in the
decode worker processes: PIL/numpy only. Decoding and zip reading are :mod:`stages.data.decode` and
:mod:`stages.data.image_files` (shared with ``3dgp eval``); zip files and LSUN envs are opened once per process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from stages.data.decode import DEFAULT_MAX_PIXELS, Unreadable, load_depth, load_rgb
from stages.data.format import encode_depth, encode_depth_gt, encode_image
from stages.data.image_files import DEFAULT_MAX_BYTES, Skipped, open_cached, over_cap_reason, read_zip_member


class Unit(NamedTuple):
    """One input of a prep source."""

    kind: str  # "file" | "zip" | "lsun" | "toy"
    container: str  # file path | zip path | LSUN env dir | toy seed (as str)
    member: str  # "" | zip member | LSUN key (latin-1) | toy index (as str)
    label: int | None  # class index, or None when unlabelled
    depth_member: str | None  # precomputed "<name>_depth.png" (a path, or a member of the same zip)
    source: str  # recorded as the item's source path/key


@dataclass
class Loaded:
    """A decoded input at the dataset resolution, already encoded for storage (encoding runs in the workers)."""

    image: np.ndarray | None  # uint8 [R, R, 3] when the main process needs pixels (estimator/embedder), else None
    image_blob: bytes  # the stored image (lossless, stages.data.format.encode_image)
    depth_blob: bytes | None  # the stored uint16 depth (precomputed or toy estimate), else None
    depth_gt: bytes | None  # stored float32 ground-truth depth (toy only)
    label: int | None
    source: str


def _lsun_bytes(env_dir: str, key: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    import lmdb

    env = open_cached(env_dir, lambda p: lmdb.open(p, readonly=True, lock=False, readahead=False, subdir=True))
    with env.begin() as txn:
        value = txn.get(key.encode("latin-1"))
    if value is None:
        raise Unreadable("key vanished from the LSUN LMDB")
    if len(value) > max_bytes:
        raise Unreadable(over_cap_reason(len(value), max_bytes))
    return value


def _encode_depth(depth: np.ndarray | None) -> bytes | None:
    """float32 [R, R] relative depth -> the stored uint16 blob in the LeReS export convention (3DGP ref §3.3)."""
    if depth is None:
        return None
    from stages.prep.depth.base import encode_depth_uint16

    return encode_depth(encode_depth_uint16(depth))


def _load_toy(unit: Unit, resolution: int, depth_mode: str, keep_array: bool) -> Loaded:
    from stages.prep.toy import render_toy_item  # the toy renderer (numpy)

    seed, _, scenes = unit.container.partition(":")
    item = render_toy_item(int(seed), int(unit.member), resolution, scenes or "full")
    image = np.ascontiguousarray(item.image, dtype=np.uint8)  # [R, R, 3]
    depth = np.asarray(item.depth_est, dtype=np.float32) if depth_mode == "toy" else None
    return Loaded(
        image if keep_array else None,
        encode_image(image),
        _encode_depth(depth),
        encode_depth_gt(item.depth_gt),
        int(item.label),
        unit.source,
    )


def load_unit(
    unit: Unit,
    resolution: int,
    depth_mode: str,
    keep_array: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,  # --max-pixels: larger images are skipped
    max_bytes: int = DEFAULT_MAX_BYTES,  # --max-file-mb: larger zip members / LSUN values are skipped
) -> Loaded | Skipped:
    """Decode and encode one unit at ``resolution``. ``depth_mode == "precomputed"`` also reads its
    ``_depth.png``; ``"toy"`` keeps the toy estimate; ``keep_array`` returns the pixels too (for the estimator and
    embedder). Never raises for bad inputs: returns ``Skipped(source, reason)``."""
    if unit.label is not None and unit.label < 0:
        return Skipped(unit.source, "no label for it in dataset.json")
    try:
        if unit.kind == "toy":
            return _load_toy(unit, resolution, depth_mode, keep_array)
        if unit.kind == "file":
            image = load_rgb(unit.container, resolution, max_pixels)
        elif unit.kind == "zip":
            image = load_rgb(read_zip_member(unit.container, unit.member, max_bytes), resolution, max_pixels)
        elif unit.kind == "lsun":
            image = load_rgb(_lsun_bytes(unit.container, unit.member, max_bytes), resolution, max_pixels)
        else:
            raise AssertionError(f"unknown unit kind {unit.kind!r}")
        depth = None
        if depth_mode == "precomputed":
            assert unit.depth_member is not None, "precomputed depth needs a depth file for every image"
            try:
                raw = (read_zip_member(unit.container, unit.depth_member, max_bytes) if unit.kind == "zip"
                       else unit.depth_member)
                depth = load_depth(raw, resolution, max_pixels)
            except Unreadable as exc:
                raise Unreadable(f"depth map {unit.depth_member}: {exc}") from None
            except FileNotFoundError:
                raise Unreadable(f"depth map {unit.depth_member} disappeared") from None
        blob = encode_image(image)
        return Loaded(image if keep_array else None, blob, _encode_depth(depth), None, unit.label, unit.source)
    except Unreadable as exc:
        return Skipped(unit.source, str(exc))
    except FileNotFoundError:
        return Skipped(unit.source, "file disappeared")
    except OSError as exc:
        return Skipped(unit.source, f"cannot read ({exc.strerror or exc})")


@dataclass
class SourcePlan:
    """Everything a source contributes before decoding starts (built in the main process)."""

    kind: str  # the source name (toy, folder, zip, imagenet, lsun)
    units: list[Unit]  # the inputs, in their final (deterministic) order
    class_names: list[str]  # label i is class_names[i]; empty when unlabelled
    has_precomputed_depth: bool  # any "<name>_depth.png" beside the images (models.resolve_depth_name counts them)
    description: dict  # recorded as meta["source"]: kind, path and source-specific facts
    skipped: list[Skipped] = field(default_factory=list)  # entries skipped while listing (links, FIFOs, ...)
