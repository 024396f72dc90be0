"""Image and depth-map decoding, center-crop and Lanczos resize (3DGP ref §7.4). Runs in the decode workers,
so it imports only PIL and numpy (never torch).

Every input ends up as RGB uint8: grayscale is replicated, RGBA/LA/transparent palettes are composited on white
(as the official resize script does for JPEG output), CMYK and other modes go through PIL's converter, 16-bit
grayscale is rounded to 8 bits (x / 257), and EXIF orientation is applied. Anything PIL cannot decode raises
``Unreadable`` with a short reason, which the pipeline records in ``prep_report.json``.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

_LANCZOS = Image.Resampling.LANCZOS
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class Unreadable(Exception):
    """An input that cannot be used; ``str()`` is the reason recorded in the prep report."""


def _open(data: bytes | str | os.PathLike) -> Image.Image:
    """Open from bytes or a path; raises Unreadable for empty, non-image or bomb-sized inputs."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise Unreadable("empty file (0 bytes)")
        fp = io.BytesIO(data)
    else:
        if os.path.getsize(data) == 0:
            raise Unreadable("empty file (0 bytes)")
        fp = data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.UnidentifiedImageError:
        raise Unreadable("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unreadable(f"image too large ({exc})") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file itself is the problem: reported as "cannot read"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated headers and the like
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None


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


def load_rgb(data: bytes | str | os.PathLike, resolution: int) -> np.ndarray:
    """Decode an image file or bytes and return uint8 [R, R, 3]: EXIF-oriented, RGB, center-cropped, Lanczos-resized
    (3DGP ref §7.4). Raises Unreadable with a reason."""
    im = _open(data)
    try:
        if im.format == "JPEG":
            im.draft(None, (resolution, resolution))  # DCT-domain downscale, never below the target size
        im = ImageOps.exif_transpose(im)
        im.load()
        rgb = Image.fromarray(_to_rgb_array(im), "RGB")
    except Unreadable:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None
    finally:
        im.close()
    if min(rgb.size) < 1:
        raise Unreadable("image has zero size")
    box = center_crop_box(*rgb.size)
    out = rgb.resize((resolution, resolution), _LANCZOS, box=box)
    return np.asarray(out)


def load_depth(data: bytes | str | os.PathLike, resolution: int) -> np.ndarray:
    """Decode a ``<name>_depth.png`` (16-bit used as is, 8-bit x 256, first channel; 3DGP ref §3.3) and return it
    center-cropped and Lanczos-resized in float: float32 [R, R], >= 0, larger = farther."""
    im = _open(data)
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
    height, width = raw.shape
    depth = Image.fromarray(raw, "F").resize((resolution, resolution), _LANCZOS, box=center_crop_box(width, height))
    return np.maximum(np.asarray(depth, dtype=np.float32), 0.0)  # Lanczos may undershoot below zero
