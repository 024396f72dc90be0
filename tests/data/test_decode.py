"""Decode edge cases with golden pixels: grayscale, RGBA, palette, CMYK, 16-bit, EXIF orientation, bad files."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from stages.data.decode import Unreadable, center_crop_box, load_depth, load_rgb


def _save(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grayscale [H, W] or RGB [H, W, 3]) written by hand: PIL cannot write 48-bit RGB."""
    height, width = arr.shape[:2]
    color_type = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_rgb_is_center_cropped_and_resized():
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :4] = (255, 0, 0)  # cropped away
    arr[:, 4:12] = (0, 255, 0)  # the centre square
    arr[:, 12:] = (0, 0, 255)  # cropped away
    out = load_rgb(_save(Image.fromarray(arr)), 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out == (0, 255, 0)).all()
    assert center_crop_box(16, 8) == (4, 0, 12, 8)
    assert load_rgb(_save(Image.fromarray(arr)), 4).shape == (4, 4, 3)


def test_grayscale_and_bilevel_become_rgb():
    assert (load_rgb(_save(Image.new("L", (6, 6), 100)), 6) == 100).all()
    assert (load_rgb(_save(Image.new("1", (6, 6), 1)), 6) == 255).all()


def test_rgba_is_composited_on_white():
    out = load_rgb(_save(Image.new("RGBA", (4, 4), (255, 0, 0, 128))), 4)
    assert out[0, 0].tolist() == [255, 127, 127]  # 0 * 128/255 + 255 * 127/255 = 127
    out = load_rgb(_save(Image.new("LA", (4, 4), (0, 0))), 4)
    assert out[0, 0].tolist() == [255, 255, 255]  # fully transparent -> white


def test_palette_with_transparency():
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 255, 10, 20, 30] + [0] * 762)
    im.paste(1, (0, 2, 4, 4))  # bottom half: index 1, transparent
    out = load_rgb(_save(im, transparency=1), 4)
    assert out[0, 0].tolist() == [0, 0, 255]
    assert out[3, 0].tolist() == [255, 255, 255]
    im_opaque = Image.new("P", (4, 4), 1)
    im_opaque.putpalette([0, 0, 255, 10, 20, 30] + [0] * 762)
    assert load_rgb(_save(im_opaque), 4)[0, 0].tolist() == [10, 20, 30]


def test_cmyk():
    out = load_rgb(_save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), 4)
    assert out[0, 0].tolist() == [255, 0, 0]
    out = load_rgb(_save(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "TIFF"), 4)
    assert out[0, 0].tolist() == [255, 255, 255]


def test_16bit_gray_and_rgb():
    out = load_rgb(_png16(np.full((4, 4), 40000, np.uint16)), 4)
    assert out[0, 0].tolist() == [156, 156, 156]  # round(40000 / 257)
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[...] = (65535, 32896, 256)
    assert load_rgb(_png16(rgb), 4)[0, 0].tolist() == [255, 128, 1]


def test_exif_orientation_is_applied():
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)  # left half red
    arr[:, 32:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left half ends up on top
    data = _save(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    out = load_rgb(data, 16).astype(int)
    assert np.abs(out[1, 8] - (255, 0, 0)).max() < 40  # top: red
    assert np.abs(out[14, 8] - (0, 0, 255)).max() < 40  # bottom: blue
    plain = load_rgb(_save(Image.fromarray(arr), "JPEG", quality=95), 16).astype(int)
    assert np.abs(plain[14, 1] - (255, 0, 0)).max() < 40  # without EXIF the left column stays red


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n" * 10, "not an image"),
    ],
)
def test_unreadable_inputs(data, reason):
    with pytest.raises(Unreadable, match=reason):
        load_rgb(data, 8)


def test_truncated_jpeg_is_unreadable():
    data = _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), "JPEG")
    with pytest.raises(Unreadable, match="cannot decode"):
        load_rgb(data[: len(data) // 2], 16)


def test_depth_png_16bit_as_is_and_8bit_times_256():
    depth = np.tile(np.arange(4, dtype=np.uint16) * 1000 + 1000, (4, 1))  # [4, 4]
    buf = io.BytesIO()
    Image.fromarray(depth).save(buf, format="PNG")
    out = load_depth(buf.getvalue(), 4)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    np.testing.assert_allclose(out, depth.astype(np.float32))
    out8 = load_depth(_save(Image.new("L", (4, 4), 10)), 4)
    np.testing.assert_allclose(out8, 2560.0)
    out_rgb = load_depth(_save(Image.new("RGB", (4, 4), (3, 200, 200))), 2)
    np.testing.assert_allclose(out_rgb, 768.0, rtol=1e-5)  # first channel only
