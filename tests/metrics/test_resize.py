"""The two resize modes of the Inception detector (3DGP ref §6.2); clean-fid parity lives in test_detector.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.metrics.resize import INCEPTION_SIZE, resize_clean, resize_for_detector, resize_stylegan

SIZES = [(32, 32), (64, 64), (256, 256), (48, 80), (300, 200)]  # (H, W)


def _images(height, width, count=2, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 3, height, width), dtype=np.uint8))


def nvidia_resize(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """NVIDIA's detector resize as ref §6.2 states it: identity theta with its translation column shifted."""
    x = images.float()
    n, c, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / size], [0.0, 1.0, 1.0 / h - 1.0 / size]]).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def bilinear_by_hand(images: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """The same resampling without torch: pixel-centre coordinates, the theta shift, border clamp, bilinear."""
    x = images.astype(np.float64)
    _, _, h, w = x.shape
    centres = (2 * np.arange(size) + 1) / size - 1  # normalized output pixel centres (align_corners=False)

    def taps(extent):
        coord = ((centres + 1 / extent - 1 / size + 1) * extent - 1) / 2  # input pixel coordinate
        coord = np.clip(coord, 0, extent - 1)  # border padding
        low = np.minimum(np.floor(coord).astype(int), extent - 1)
        high = np.minimum(low + 1, extent - 1)
        return low, high, coord - low

    y0, y1, fy = taps(h)
    x0, x1, fx = taps(w)
    rows = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]  # [N, C, size, W]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx  # [N, C, size, size]


@pytest.mark.parametrize("height,width", SIZES)
def test_stylegan_resize_matches_nvidia(height, width):
    images = _images(height, width, seed=height * 1000 + width)
    out = resize_stylegan(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, INCEPTION_SIZE, INCEPTION_SIZE)
    torch.testing.assert_close(out, nvidia_resize(images), rtol=0, atol=1e-4)
    # float32 grid coordinates are off by ~1e-5 px (x up to 255 between noise pixels); the 1/W - 1/299 shift
    # alone moves samples by >= 0.04 px here, i.e. errors of several units
    np.testing.assert_allclose(out.numpy(), bilinear_by_hand(images.numpy()), rtol=0, atol=0.02)
    assert 0 <= out.min() and out.max() <= 255  # bilinear never overshoots
    torch.testing.assert_close(resize_for_detector(images, "stylegan"), out, rtol=0, atol=0)


def test_stylegan_resize_accepts_float_and_keeps_299():
    images = _images(64, 64)
    torch.testing.assert_close(resize_stylegan(images.float()), resize_stylegan(images), rtol=0, atol=0)
    already = _images(INCEPTION_SIZE, INCEPTION_SIZE, seed=3)  # the identity up to float32 coordinate rounding:
    torch.testing.assert_close(resize_stylegan(already) / 255, already.float() / 255, rtol=0, atol=1e-4)
    torch.testing.assert_close(nvidia_resize(already), resize_stylegan(already), rtol=0, atol=1e-4)


@pytest.mark.parametrize("height,width", [(32, 32), (48, 80)])
def test_clean_mode_dispatch(height, width):
    images = _images(height, width, seed=7)
    out = resize_for_detector(images, "clean")
    assert out.dtype == torch.float32 and out.shape == (2, 3, INCEPTION_SIZE, INCEPTION_SIZE)
    expected = resize_clean(images.permute(0, 2, 3, 1).numpy())  # [N, 299, 299, 3]
    np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
    assert 0 <= out.min() and out.max() <= 255  # bicubic overshoot clipped
    already = _images(INCEPTION_SIZE, INCEPTION_SIZE, seed=8)
    torch.testing.assert_close(resize_for_detector(already, "clean"), already.float(), rtol=0, atol=0)


def test_modes_differ_and_unknown_mode():
    images = _images(64, 64, seed=9)
    assert (resize_for_detector(images, "clean") - resize_for_detector(images, "stylegan")).abs().max() > 1
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize_for_detector(images, "bicubic")
