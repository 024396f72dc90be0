"""Image and depth-map decoding, center-crop and Lanczos resize (3DGP ref §7.4), shared by ``3dgp prep`` (its
decode workers) and ``3dgp eval`` (folders of images), so both read an image file the same way. Imports only PIL and
numpy (never torch).

Every input ends up as RGB uint8: grayscale is replicated, RGBA/LA/transparent palettes are composited on white
(as the official resize script does for JPEG output), CMYK and other modes go through PIL's converter, 16-bit
grayscale is rounded to 8 bits (x / 257), and EXIF orientation is applied. Anything PIL cannot decode raises
``Unreadable`` with a short reason, which prep records in ``prep_report.json`` (eval logs it); so does an image with
more pixels than ``max_pixels`` (PIL's decompression-bomb limit by default; prep's ``--max-pixels`` raises it),
checked from the header before any pixel is decoded.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

_LANCZOS = Image.Resampling.LANCZOS
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default Image.MAX_IMAGE_PIXELS (stages.prep.config uses the same)


class Unreadable(Exception):
    """An input that cannot be used; ``str()`` is the reason (recorded in the prep report, logged by eval)."""


@contextlib.contextmanager
def _own_pixel_limit():
    """Turn PIL's global bomb check off while decoding: ``_open`` applies ``max_pixels`` itself, from the header,
    with a message that names the size and the option (PIL's would warn at 1x and fail at 2x its limit)."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _open(data: bytes | str | os.PathLike, max_pixels: int) -> Image.Image:
    """Open from bytes or a path (header only); raises Unreadable for empty, non-image or too large inputs."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise Unreadable("empty file (0 bytes)")
        fp = io.BytesIO(data)
    else:
        if os.path.getsize(data) == 0:
            raise Unreadable("empty file (0 bytes)")
        fp = data
    try:
        im = Image.open(fp)
    except Image.UnidentifiedImageError:
        raise Unreadable("not an image (unrecognised format)") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file itself is the problem: reported as "cannot read"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated headers and the like
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise Unreadable(f"image too large ({width}x{height} = {width * height:,} pixels; the limit is "
                         f"{max_pixels:,}: raise it with --max-pixels if the image is real)")
    return im


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 [H, W, 3] (alpha composited on white, 16-bit scaled by 1/257)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in _ALPHA_MODES:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)  # [H, W, 4]
        alpha = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)  # composite on white
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    if mode.startswith("I") or mode == "F":  # 16/32-bit grayscale: I;16*, I, F
        gray = np.asarray(im).astype(np.float64)  # [H, W]
        scale = 1.0 if mode == "F" and gray.max(initial=0) <= 255 else 1.0 / 257.0
        gray = np.clip(np.round(gray * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))  # RGB, L, 1, CMYK, YCbCr, LAB, HSV


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centered square crop of the shorter side, as a PIL box (left, top, right, bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def load_rgb(data: bytes | str | os.PathLike, resolution: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file or bytes and return uint8 [R, R, 3]: EXIF-oriented, RGB, center-cropped, Lanczos-resized
    (3DGP ref §7.4). Raises Unreadable with a reason."""
    with _own_pixel_limit():
        rgb = _decode_rgb(data, resolution, max_pixels)
    if min(rgb.size) < 1:
        raise Unreadable("image has zero size")
    box = center_crop_box(*rgb.size)
    out = rgb.resize((resolution, resolution), _LANCZOS, box=box)
    return np.asarray(out)


def _decode_rgb(data: bytes | str | os.PathLike, resolution: int, max_pixels: int) -> Image.Image:
    im = _open(data, max_pixels)
    try:
        if im.format == "JPEG":
            im.draft(None, (resolution, resolution))  # DCT-domain downscale, never below the target size
        im = ImageOps.exif_transpose(im)
        im.load()
        if im.mode == "RGB":  # most JPEGs: already what is stored, no round trip through numpy (issue 21 §2)
            rgb, im = im, None
        else:
            rgb = Image.fromarray(_to_rgb_array(im), "RGB")
    except Unreadable:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None
    finally:
        if im is not None:
            im.close()
    return rgb


def load_depth(data: bytes | str | os.PathLike, resolution: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``<name>_depth.png`` (16-bit used as is, 8-bit x 256, first channel; 3DGP ref §3.3) and return it
    center-cropped and Lanczos-resized in float: float32 [R, R], >= 0, larger = farther."""
    with _own_pixel_limit():
        raw = _decode_depth(data, max_pixels)
    height, width = raw.shape
    depth = Image.fromarray(raw, "F").resize((resolution, resolution), _LANCZOS, box=center_crop_box(width, height))
    return np.maximum(np.asarray(depth, dtype=np.float32), 0.0)  # Lanczos may undershoot below zero


def _decode_depth(data: bytes | str | os.PathLike, max_pixels: int) -> np.ndarray:
    im = _open(data, max_pixels)
    try:
        im.load()
        mode = im.mode
        if mode.startswith("I") or mode == "F":
            raw = np.asarray(im).astype(np.float32)  # 16-bit (or 32-bit) values used as they are
        else:
            arr = np.asarray(im.convert("RGB") if mode in ("P", "CMYK", "YCbCr") else im)
            raw = (arr[..., 0] if arr.ndim == 3 else arr).astype(np.float32) * 256.0  # 8-bit: x 256
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise Unreadable(f"cannot decode depth map ({type(exc).__name__}: {exc})") from None
    finally:
        im.close()
    return raw
