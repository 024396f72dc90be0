"""The lossless pixel codec of dataset format 2, and format-1 (PNG) datasets still read (issue 21 §2)."""
from __future__ import annotations

import numpy as np
import pytest

from stages.data.codec import decode_upz, encode_upz, is_upz
from stages.data.format import (
    decode_depth,
    decode_image,
    encode_depth,
    encode_depth_png,
    encode_image,
    encode_image_png,
)


@pytest.mark.parametrize("shape, dtype", [((32, 32, 3), np.uint8), ((17, 5, 3), np.uint8), ((1, 1, 3), np.uint8),
                                          ((32, 32), np.uint16), ((9, 64), np.uint8)])
def test_round_trip_is_exact(shape, dtype):
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    array[0] = np.iinfo(dtype).max  # wrap-around of the row differences
    blob = encode_upz(array)
    back = decode_upz(blob)
    assert is_upz(blob) and back.dtype == dtype and back.shape == shape and np.array_equal(back, array)


def test_smooth_images_compress_and_malformed_blobs_are_refused():
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    blob = encode_upz(smooth)
    assert len(blob) < smooth.nbytes / 10  # rows differ by a constant: the prediction leaves almost nothing
    with pytest.raises(ValueError, match="not a 3UPZ"):
        decode_upz(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError):
        decode_upz(blob[:-5])  # a truncated frame


def test_stored_blobs_are_3upz_and_png_blobs_still_decode():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (16, 16), dtype=np.uint16)
    assert is_upz(encode_image(image)) and is_upz(encode_depth(depth))
    for blob in (encode_image(image), encode_image_png(image)):
        assert np.array_equal(decode_image(blob), image)
    for blob in (encode_depth(depth), encode_depth_png(depth)):
        assert np.array_equal(decode_depth(blob), depth)
