"""The two ways images reach the Inception detector's 299x299 input (3DGP ref §6.2); the metric card names which.

* ``stylegan`` (the default; what the paper's numbers use): NVIDIA's TorchScript detector resizes inside its forward
  pass. The uint8 batch is cast to float32 (0..255) and resampled with ``affine_grid`` + ``grid_sample`` (bilinear,
  border padding, ``align_corners=False``), the 2x3 identity's translation column shifted by ``1/W - 1/299`` (x) and
  ``1/H - 1/299`` (y). That imitates TF's old bilinear resize: no antialiasing, a small offset. The packaged
  ``default_1.pt`` holds only the layers after that resize, so it is ours.
* ``clean`` (clean-fid's "clean" mode): each channel resized as a float image with PIL bicubic (antialiased), then
  clipped to 0..255, no rounding.

Public API:
  resize_stylegan(images uint8/float [N, 3, H, W] tensor) -> float32 [N, 3, 299, 299] in 0..255 (torch)
  resize_clean(images uint8/float [N, H, W, 3] array) -> float32 [N, 299, 299, 3] in 0..255 (numpy)
  resize_for_detector(images [N, 3, H, W] tensor, mode) -> float32 [N, 3, 299, 299] tensor
"""
from __future__ import annotations

import numpy as np

INCEPTION_SIZE = 299
RESIZE_MODES = ("stylegan", "clean")


def resize_stylegan(images, size: int = INCEPTION_SIZE):
    """NVIDIA's in-detector resize (3DGP ref §6.2): float32 cast, affine_grid + bilinear grid_sample, border pad."""
    import torch
    import torch.nn.functional as F

    x = images.to(torch.float32)  # [N, 3, H, W] in 0..255
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size  # x offset
    theta[:, 1, 2] = 1.0 / h - 1.0 / size  # y offset
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)  # [N, size, size, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # [N, 3, size, size]


def resize_clean(images: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """clean-fid "clean" resize: uint8/float [N, H, W, 3] -> float32 [N, size, size, 3] in 0..255.

    Every channel goes through PIL's bicubic filter as a 32-bit float image, then is clipped to 0..255; no rounding
    happens after resizing (clean-fid ``make_resizer("PIL", False, "bicubic", ...)``).
    """
    from PIL import Image

    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images.astype(np.float32)
    out = np.empty((len(images), size, size, 3), np.float32)
    for index, image in enumerate(images):
        for channel in range(3):
            plane = Image.fromarray(image[:, :, channel].astype(np.float32), mode="F")
            out[index, :, :, channel] = np.asarray(plane.resize((size, size), Image.Resampling.BICUBIC))
    return np.clip(out, 0.0, 255.0, out=out)  # bicubic overshoot is clipped, as clean-fid does


def resize_for_detector(images, mode: str = "stylegan", size: int = INCEPTION_SIZE):
    """``[N, 3, H, W]`` uint8/float tensor (0..255) -> float32 ``[N, 3, size, size]`` tensor, by ``mode``."""
    import torch

    if mode == "stylegan":
        return resize_stylegan(images, size)
    if mode == "clean":
        if tuple(images.shape[-2:]) == (size, size):
            return images.to(torch.float32)
        resized = resize_clean(images.permute(0, 2, 3, 1).cpu().numpy(), size)  # [N, size, size, 3]
        return torch.from_numpy(resized).permute(0, 3, 1, 2).to(images.device)
    raise ValueError(f"unknown resize mode {mode!r} (expected one of {RESIZE_MODES})")
