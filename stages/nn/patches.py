"""Patch-wise training: patch-parameter sampling and real-patch extraction (3DGP ref §1.7, §13).

A patch is (s, o_x, o_y): scale s in [min_scale, max_scale], offsets in [0, 1 - s]. ``o_y`` is measured from the
BOTTOM of the image, the same convention as the rays of ``stages.nn.rays.pixel_ndc`` (ref §1.4), so fake and real
patches of the same parameters cover the same image region.

* ``sample_patch_params``: the EpiGRAF "beta" scheme, s = min_scale + (max_scale - min_scale) * Beta(1, beta) and
  o ~ U[0, 1 - s] independently for x and y, drawn once per group of ``group_size`` (default 4) CONSECUTIVE
  samples (sample n uses draw n // group_size). Beta(1, b) is sampled exactly by inverse CDF, 1 - (1 - u)^(1 / b),
  so one torch generator drives everything (on the generator's device, moved to ``device``).
  Note: these groups are NOT the minibatch-std groups of D. StyleGAN2's mbstd layer groups samples with a
  stride (sample n belongs to group n mod (B / 4), ``stages.nn.disc_blocks.MinibatchStdLayer``), while patch
  parameters are shared by consecutive samples. The official code has exactly this mismatch (ref §1.7 calls the
  patch groups "minibatch-std groups", which is loose wording) and we reproduce it on purpose: do not "align" the
  two groupings. The trainer passes beta(t) = lin(t; 0.001 -> 0.8 over 10000 kimg).
* ``extract_patches``: ``F.grid_sample`` (bilinear, align_corners=True, zero padding) on the patch's pixel-centre
  grid. At s = 1 this is a plain bilinear downsample with NO anti-aliasing, like the official code (ref §13).

Public API:
  sample_patch_params(batch_size, min_scale, beta, group_size=4, generator=None, device=None, max_scale=1.0)
      -> [B, 3]
  extract_patches(images [B, C, H, W], params [B, 3], resolution) -> [B, C, r, r]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.nn import rng
from stages.nn.rays import pixel_ndc


def sample_patch_params(
    batch_size: int,
    min_scale: float,
    beta: float,
    group_size: int = 4,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_scale: float = 1.0,
) -> torch.Tensor:
    """Draw ``[batch_size, 3]`` patch parameters (s, o_x, o_y), shared within groups of ``group_size`` (ref §1.7)."""
    if not 0.0 < min_scale <= max_scale <= 1.0:
        raise ValueError(f"patch_min_scale: need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
    if beta <= 0:
        raise ValueError(f"patch_beta: must be > 0, got {beta}")
    if group_size < 1:
        raise ValueError(f"mbstd_group_size: must be >= 1, got {group_size}")
    num_groups = -(-batch_size // group_size)  # ceil
    u = rng.rand((num_groups, 3), generator, device, torch.float64)  # [G, 3], on the generator's device
    beta_draw = 1.0 - (1.0 - u[:, 0]).pow(1.0 / beta)  # Beta(1, beta) by inverse CDF, [G]
    scale = min_scale + (max_scale - min_scale) * beta_draw
    offsets = u[:, 1:] * (1.0 - scale).unsqueeze(1)  # [G, 2], U[0, 1 - s]
    params = torch.cat([scale.unsqueeze(1), offsets], dim=1).float()  # [G, 3]
    return params.repeat_interleave(group_size, dim=0)[:batch_size]  # [B, 3]


def extract_patches(images: torch.Tensor, params: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resample ``[B, C, H, W]`` images at the patches ``[B, 3]`` into ``[B, C, r, r]`` (3DGP ref §1.7, §13).

    Pixel (i, j) of the patch samples the NDC point (u', v') of ``pixel_ndc``; grid_sample's y axis points down, so
    the grid is (u', -v'). Differentiable w.r.t. ``images`` (R1 is taken on the extracted patch, ref §5.1).
    """
    assert images.ndim == 4 and params.shape == (images.shape[0], 3), "need images [B, C, H, W] and params [B, 3]"
    u, v = pixel_ndc(resolution, params.to(images.dtype), images.shape[0])  # [B, r, r] each
    grid = torch.stack([u, -v], dim=-1)  # [B, r, r, 2], grid_sample (x right, y down)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
