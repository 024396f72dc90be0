"""Lossless pixel codec of dataset format 2: PNG's "up" prediction, then zstandard (issue 21 §2).

Why not PNG: at 256 x 256, Pillow's PNG encoder (adaptive row filters + deflate, even at level 1) takes 5-7 ms per
image, more than decoding, cropping and resizing the JPEG it came from together; prep of ImageNet (1.28 M images) is
then bound by the writer. The same prediction PNG uses most (each row minus the row above, modulo the sample
range) followed by zstandard at level 1 is about 8x faster to encode and to decode and 4 % smaller on photos
(``benchmarks/RESULTS.md``, "Prep throughput"). Decoding is vectorised: the inverse filter is a cumulative sum down
the rows.

A blob is ``MAGIC`` (4 bytes), a little-endian header (height, width, channels: uint32 each; dtype: 1 byte, 1 =
uint8, 2 = uint16) and one zstandard frame of the filtered samples in row-major [H, W, C] order. Blobs are
recognised by their magic, so a dataset may mix them with PNG blobs (format 1, or a partial prep resumed by a newer
3dgp): :func:`is_upz` tells them apart.

Public API:
  encode_upz(array uint8 [H, W, C] | [H, W] or uint16 [H, W]) -> bytes
  decode_upz(bytes) -> array (the same dtype and shape)
  is_upz(bytes) -> bool
"""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"3UPZ"
_HEADER = struct.Struct("<IIIB")
_DTYPES = {1: np.dtype("<u1"), 2: np.dtype("<u2")}
ZSTD_LEVEL = 1


def _zstd():
    import zstandard

    return zstandard


def is_upz(data: bytes | memoryview) -> bool:
    """Whether ``data`` is a blob of this codec (else: PNG)."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def encode_upz(array: np.ndarray) -> bytes:
    """Lossless blob of a uint8 or uint16 image (module docstring)."""
    code = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}.get(array.dtype)
    assert code is not None and array.ndim in (2, 3), (array.dtype, array.shape)
    array = array.astype(_DTYPES[code], copy=False)  # little-endian samples
    height, width = array.shape[:2]
    channels = array.shape[2] if array.ndim == 3 else 0
    filtered = array.copy()
    filtered[1:] -= array[:-1]  # "up": each row minus the row above, wrapping modulo the sample range
    frame = _zstd().ZstdCompressor(level=ZSTD_LEVEL).compress(filtered.tobytes())
    return MAGIC + _HEADER.pack(height, width, channels, code) + frame


def decode_upz(data: bytes | memoryview) -> np.ndarray:
    """Inverse of :func:`encode_upz`; ValueError on a malformed blob."""
    data = memoryview(data)
    if not is_upz(data) or len(data) < len(MAGIC) + _HEADER.size:
        raise ValueError("not a 3UPZ image blob")
    height, width, channels, code = _HEADER.unpack_from(data, len(MAGIC))
    if code not in _DTYPES:
        raise ValueError(f"3UPZ blob with an unknown sample type {code}")
    shape = (height, width, channels) if channels else (height, width)
    size = int(np.prod(shape)) * _DTYPES[code].itemsize
    zstd = _zstd()
    try:
        raw = zstd.ZstdDecompressor().decompress(data[len(MAGIC) + _HEADER.size:], max_output_size=size)
    except zstd.ZstdError as exc:
        raise ValueError(f"3UPZ blob: {exc}") from None
    if len(raw) != size:
        raise ValueError(f"3UPZ blob holds {len(raw)} bytes, its header says {size}")
    filtered = np.frombuffer(raw, dtype=_DTYPES[code]).reshape(shape)
    return np.cumsum(filtered, axis=0, dtype=_DTYPES[code])  # the inverse filter, modulo the sample range
