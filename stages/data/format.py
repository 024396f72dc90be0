"""The on-disk dataset format shared by the prep writer and the training reader (3DGP ref §3.3, §7.1).

One LMDB environment (a directory holding ``data.mdb``) per dataset:

* ``__meta__``  -> JSON meta record (``REQUIRED_META_FIELDS``). Written LAST, only once every item is in; a
  directory without it is an unfinished prep.
* ``000000000`` ... (zero-padded item index, ``item_key``) -> one packed item (``pack_item``):
  a 4-byte little-endian header length, a JSON header, then the binary blobs it lists, in order:
    - ``image``:     RGB uint8 [R, R, 3], lossless: a 3UPZ blob (``stages.data.codec``: "up" prediction +
                     zstandard; format 2) or PNG bytes (format 1); readers tell them apart by their magic;
    - ``depth``:     uint16 [R, R] in the same codec, larger = farther, the LeReS export convention (§3.3); decoded
                     by the reader as D / 65536 * 2 - 1 in [-1, 1); absent when prepped with ``--depth-model none``;
    - ``embedding``: raw little-endian float16 [D] (the distillation target, §4.3, §7.5), when an embedder ran;
    - ``depth_gt``:  raw little-endian float32 [R, R] ground-truth depth (the toy source only).
  The header also holds ``label`` (int, or null for none) and ``source`` (the file path or key it came from).
* While a prep is running, bookkeeping keys with a ``__`` prefix (``PROGRESS_KEY``, ``ARGS_KEY``, ``skip/…``,
  ``plan/…``) make it resumable; the writer deletes them when it adds the meta record.

This module is torch-free so that ``3dgp info`` and the prep writer stay light.
"""
from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np

FORMAT_VERSION = 2  # 2: images and depth maps as 3UPZ blobs (1: PNG); this 3dgp reads both
READABLE_VERSIONS = (1, 2)
META_KEY = b"__meta__"
PROGRESS_KEY = b"__progress__"  # {"next_unit": int, "num_items": int, "label_counts": {...}}
ARGS_KEY = b"__args__"  # the exact prep arguments a partial dataset was started with
SKIP_PREFIX = b"__skip__/"  # one per unreadable input: {"source": ..., "reason": ...}
PLAN_PREFIX = b"__plan__/"  # per-class instance-selection results (imagenet --keep-ratio)
INDEX_DIGITS = 9
PNG_COMPRESS_LEVEL = 1  # format-1 blobs (tests of old datasets): lossless either way, level 1 is the fastest

REQUIRED_META_FIELDS = (
    "format_version",  # int, == FORMAT_VERSION
    "resolution",  # int R, images are R x R
    "num_items",  # int N, items are keyed 0 .. N-1
    "class_names",  # list[str], empty when unlabelled
    "label_counts",  # list[int] per class (empty when unlabelled)
    "source",  # {"kind": ..., "path": ...}
    "prep_args",  # the exact prep arguments (fingerprint used for resume)
    "prep_command",  # the `3dgp prep ...` command line that rebuilds this dataset
    "depth",  # {"name", "version", "weights_sha256", "output_kind"} or null when no depth
    "has_depth_gt",  # bool: items carry ground-truth depth (toy)
    "embedder",  # {"name", "dim", "weights_sha256"} or null
    "num_skipped",  # int: unreadable inputs skipped (listed in prep_report.json)
    "created",  # ISO-8601 UTC time
    "code_version",  # version of the 3dgp package that wrote it
)
ITEM_BLOBS = ("image", "depth", "embedding", "depth_gt")


def item_key(index: int) -> bytes:
    """The LMDB key of item ``index`` (zero-padded, so keys sort in index order)."""
    assert 0 <= index < 10**INDEX_DIGITS
    return f"{index:0{INDEX_DIGITS}d}".encode()


def pack_item(blobs: dict[str, bytes], label: int | None, source: str) -> bytes:
    """Serialize one item: a JSON header then the blobs named in ``ITEM_BLOBS`` (absent ones left out)."""
    names = [name for name in ITEM_BLOBS if blobs.get(name) is not None]
    header = {"label": label, "source": source, "blobs": [[name, len(blobs[name])] for name in names]}
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([struct.pack("<I", len(head)), head] + [blobs[name] for name in names])


def unpack_item(value: bytes) -> tuple[dict[str, Any], dict[str, memoryview]]:
    """Inverse of :func:`pack_item`: ``(header, {blob name: bytes view})``. Raises ValueError if malformed."""
    view = memoryview(value)
    if len(view) < 4:
        raise ValueError("item record too short")
    (head_len,) = struct.unpack_from("<I", view, 0)
    header = json.loads(bytes(view[4 : 4 + head_len]))
    blobs, offset = {}, 4 + head_len
    for name, length in header["blobs"]:
        blobs[name] = view[offset : offset + length]
        offset += length
    if offset != len(view):
        raise ValueError(f"item record has {len(view) - offset} stray bytes")
    return header, blobs


def encode_image(image: np.ndarray) -> bytes:
    """uint8 [R, R, 3] -> the stored lossless blob (format 2: 3UPZ)."""
    from stages.data.codec import encode_upz

    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    return encode_upz(image)


def decode_image(data: bytes | memoryview) -> np.ndarray:
    """A stored image blob (3UPZ or PNG) -> uint8 [R, R, 3]."""
    from stages.data.codec import decode_upz, is_upz

    return decode_upz(data) if is_upz(data) else decode_image_png(data)


def encode_depth(depth_u16: np.ndarray) -> bytes:
    """uint16 [R, R] (the §3.3 export convention) -> the stored lossless blob (format 2: 3UPZ)."""
    from stages.data.codec import encode_upz

    assert depth_u16.dtype == np.uint16 and depth_u16.ndim == 2, (depth_u16.dtype, depth_u16.shape)
    return encode_upz(depth_u16)


def decode_depth(data: bytes | memoryview) -> np.ndarray:
    """A stored depth blob (3UPZ or 16-bit PNG) -> uint16 [R, R]."""
    from stages.data.codec import decode_upz, is_upz

    return decode_upz(data) if is_upz(data) else decode_depth_png(data)


def encode_image_png(image: np.ndarray) -> bytes:
    """uint8 [R, R, 3] -> lossless PNG bytes (format 1)."""
    from PIL import Image

    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_image_png(data: bytes | memoryview) -> np.ndarray:
    """PNG bytes -> uint8 [R, R, 3]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_depth_png(depth_u16: np.ndarray) -> bytes:
    """uint16 [R, R] (already in the §3.3 export convention) -> 16-bit grayscale PNG bytes."""
    from PIL import Image

    assert depth_u16.dtype == np.uint16 and depth_u16.ndim == 2, (depth_u16.dtype, depth_u16.shape)
    buf = io.BytesIO()
    Image.fromarray(depth_u16).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_depth_png(data: bytes | memoryview) -> np.ndarray:
    """16-bit PNG bytes -> uint16 [R, R]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im, dtype=np.uint16) if im.mode.startswith("I;16") else np.asarray(im).astype(np.uint16)


def depth_u16_to_unit(depth_u16: np.ndarray) -> np.ndarray:
    """Stored uint16 depth -> float32 in [-1, 1) via D / 65536 * 2 - 1 (3DGP ref §3.3)."""
    return depth_u16.astype(np.float32) / 65536.0 * 2.0 - 1.0


def encode_embedding(embedding: np.ndarray) -> bytes:
    """float [D] -> little-endian float16 bytes."""
    return np.asarray(embedding, dtype="<f2").tobytes()


def decode_embedding(data: bytes | memoryview) -> np.ndarray:
    """float16 bytes -> float32 [D]."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def encode_depth_gt(depth: np.ndarray) -> bytes:
    """Ground-truth depth float [R, R] -> little-endian float32 bytes."""
    return np.asarray(depth, dtype="<f4").tobytes()


def decode_depth_gt(data: bytes | memoryview, resolution: int) -> np.ndarray:
    """float32 bytes -> float32 [R, R]."""
    return np.frombuffer(data, dtype="<f4").reshape(resolution, resolution).astype(np.float32)


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """Validate a decoded meta record; raise DataFormatError naming ``where`` on any problem."""
    from stages.common.errors import DataFormatError

    if not isinstance(meta, dict):
        raise DataFormatError(where, "meta record is not a JSON object")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise DataFormatError(
            where, f"unknown dataset format version {version!r} (this 3dgp reads versions "
                   f"{', '.join(map(str, READABLE_VERSIONS))}); re-run 3dgp prep"
        )
    missing = [name for name in REQUIRED_META_FIELDS if name not in meta]
    if missing:
        raise DataFormatError(where, f"meta record lacks field(s) {', '.join(missing)}")

    def bad(field: str, expected: str) -> DataFormatError:
        return DataFormatError(where, f"meta record: {field} must be {expected}, got {meta[field]!r:.80}; the dataset "
                                      f"is damaged or was not written by `3dgp prep`: re-run the prep")

    def is_int(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not is_int(meta["resolution"], 1):
        raise bad("resolution", "a positive integer")
    if not is_int(meta["num_items"], 0):
        raise bad("num_items", "an integer >= 0")
    if not isinstance(meta["class_names"], list) or not all(isinstance(n, str) for n in meta["class_names"]):
        raise bad("class_names", "a list of strings")
    counts = meta["label_counts"]
    if (not isinstance(counts, list) or not all(is_int(c, 0) for c in counts)
            or len(counts) != len(meta["class_names"]) or sum(counts) > meta["num_items"]):
        raise bad("label_counts", f"{len(meta['class_names'])} item counts (one per class) adding up to at most "
                                  f"num_items")
    if meta["depth"] is not None and not isinstance(meta["depth"], dict):
        raise bad("depth", "null or an object")
    if not isinstance(meta["has_depth_gt"], bool):
        raise bad("has_depth_gt", "true or false")
    emb = meta["embedder"]
    if emb is not None and not (isinstance(emb, dict) and is_int(emb.get("dim"), 1)):
        raise bad("embedder", "null or an object with a positive integer dim")
    if not is_int(meta["num_skipped"], 0):
        raise bad("num_skipped", "an integer >= 0")
    return meta
