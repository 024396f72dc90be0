"""Generator output -> uint8 pixels, shared by training grids, metrics and export (3DGP ref §6.3, §8.4)."""
from __future__ import annotations

import torch


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 with the official quantisation clamp(x * 127.5 + 128) (ref §6.3)."""
    return (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def depth_to_uint8(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """World-unit depth ``[B, 1, H, W]`` -> grey uint8 ``[B, 3, H, W]`` (near = white)."""
    d = ((far - depth.float()) / (far - near)).clamp(0, 1)
    return (d * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
