"""Geometry scores beyond the paper: multi-view consistency, depth realism, camera posterior statistics.

These back the ``mvc``, ``depth`` and ``camera`` kinds of ``3dgp eval`` (``stages.metrics.registry``).

* **Multi-view consistency** (``multiview_consistency``, lower is better). Each sample is rendered from its
  posterior camera A and from B = A with yaw + ``yaw_delta``, both from ONE tri-plane (``noise_mode="const"``).
  View A's pixels are back-projected with A's depth (distance along the unit ray of ``make_rays``), projected into
  B (the inverse of ``camera_to_world`` and the FoV / pixel grid of ``stages.nn.rays``) and B's image is sampled
  there (bilinear, ``align_corners=True``: the extreme pixel centres are NDC +-1). **Co-visibility rule**: a pixel
  of A counts when (1) its point is in front of B and projects inside B's image (|u|, |v| <= 1), (2) B's rendered
  depth sampled there agrees with the point's distance from B's origin within
  ``depth_tolerance * (ray_end - ray_start)`` (default 2 % of the depth range: otherwise the point is occluded in
  B, or the pixel straddles a depth edge), and (3) A's depth is below ``ray_end - tolerance``: such pixels are the
  background, i.e. the opaque last sample of the ray (ref §1.5), a shell that moves with the camera and is not a
  3-D surface. The per-sample error is the mean absolute RGB difference over co-visible pixels (and the 3
  channels) with images mapped from [-1, 1] to [0, 1] and clamped; NaN when no pixel is co-visible. A 3-D
  consistent generator scores ~0 (resampling and renderer jitter only); view-dependent texture scores clearly worse.
  **Flat-depth reference**: the same warp with A's depth replaced by its per-sample median (a billboard at the
  object's distance), scored on the same co-visible pixels. A volume renderer without view-dependent colour is
  consistent by construction, and a smooth random radiance field (any generator at initialisation) warps about as
  well with a billboard as with its own depth; only real geometry explains parallax better. ``parallax_ratio`` =
  mean error with the own depth / mean error with the billboard: ~1 = the depth explains nothing a flat image
  would not, lower = the view change is explained by 3-D structure.
* **Depth realism** (``depth_realism``, lower is better): each depth map is normalised per image (1st / 99th
  percentiles to [0, 1], clamped; a constant map becomes all 0.5), so the score ignores the depth units and any
  positive affine rescale; the score is the 1-D Wasserstein distance between the pooled normalised values of
  fakes and reals (deterministically subsampled to ``max_values`` each). Fakes (raw rendered depth, world units,
  larger = farther) and reals (dataset depth in [-1, 1), larger = farther) agree in direction; reals are resized
  to the fakes' resolution (bilinear) first.
* **Camera posterior statistics** (``camera_posterior_stats``): mean and std (population) of yaw, pitch, fov_deg,
  la_yaw, la_pitch, la_radius of posterior and prior cameras (plain, non-circular statistics), and the headline
  ``spread`` = mean over yaw, pitch and fov_deg of posterior std / prior std (1: as spread as the prior, ~0:
  collapsed to one view; higher is better).

Public API:
  MVCResult(errors [n], covisible [n], flat_errors [n]) with ``.mean_error``, ``.mean_covisible``,
  ``.parallax_ratio``
  multiview_consistency(G, inputs, *, yaw_delta=0.15, truncation_psi=1.0, generator=None, depth_tolerance=0.02,
                        **render_kwargs) -> MVCResult
  warp_view(image_b [B, C, H, W], depth_b [B, 1, H, W], depth_a [B, 1, H, W], camera_a [B, 8], camera_b [B, 8], *,
            tolerance, far=None) -> (warped [B, C, H, W], covisible [B, 1, H, W] bool)
  normalize_depth_maps(depth [N, 1, H, W]) -> [N, 1, H, W] in [0, 1]
  depth_realism(fake_depth [N, 1, H, W], real_depth [M, 1, H', W'], *, max_values=1_000_000) -> float
  camera_posterior_stats(posterior [N, 8], prior [N, 8]) -> dict[str, float]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stages.nn.inputs import GeneratorInputs
from stages.nn.rays import CAM_FOV, CAM_YAW, CAMERA_DIM, CAMERA_FIELDS, camera_to_world, make_rays

DEPTH_TOLERANCE = 0.02  # co-visibility: depth agreement within this fraction of (ray_end - ray_start)
PERCENTILES = (0.01, 0.99)  # robust per-image depth normalisation
MAX_DEPTH_VALUES = 1_000_000  # pooled values per side kept for the Wasserstein distance
STAT_FIELDS = ("yaw", "pitch", "fov_deg", "la_yaw", "la_pitch", "la_radius")
SPREAD_FIELDS = ("yaw", "pitch", "fov_deg")

# ---------------------------------------------------------------------------------------------------------------
# Multi-view consistency


@dataclass(frozen=True)
class MVCResult:
    """Per-sample multi-view consistency: photometric error and co-visible fraction of view A's pixels."""

    errors: torch.Tensor  # [n] float: mean |rgb_A - warped rgb_B| in [0, 1] units; NaN without co-visible pixels
    covisible: torch.Tensor  # [n] float: fraction of A's pixels co-visible in B
    flat_errors: torch.Tensor | None = None  # [n] float: the same error with A's depth flattened to its median

    @property
    def mean_error(self) -> float:
        """The metric's value: mean error over samples that have co-visible pixels (NaN if none has)."""
        valid = ~torch.isnan(self.errors)
        return float(self.errors[valid].mean()) if bool(valid.any()) else math.nan

    @property
    def mean_covisible(self) -> float:
        return float(self.covisible.mean())

    @property
    def parallax_ratio(self) -> float:
        """Mean error / mean flat-depth error over samples with co-visible pixels (module docstring); NaN if none."""
        if self.flat_errors is None:
            return math.nan
        valid = ~torch.isnan(self.errors) & ~torch.isnan(self.flat_errors)
        if not bool(valid.any()) or float(self.flat_errors[valid].mean()) == 0.0:
            return math.nan
        return float(self.errors[valid].mean() / self.flat_errors[valid].mean())


def _project(points: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World points ``[B, R, 3]`` -> NDC ``uv [B, R, 2]`` (rays.py grid), distance from the origin and in-front mask."""
    c2w = camera_to_world(camera)  # [B, 4, 4]
    rel = points - c2w[:, None, :3, 3]  # [B, R, 3]
    cam = torch.einsum("bji,brj->bri", c2w[:, :3, :3], rel)  # [B, R, 3]: R^T (p - o), camera looks down -z
    ahead = -cam[..., 2]  # [B, R], > 0 in front of the camera
    focal = 1.0 / torch.tan(camera[:, CAM_FOV] * (math.pi / 360.0))  # [B]
    uv = cam[..., :2] * (focal.view(-1, 1, 1) / ahead.clamp(min=1e-8).unsqueeze(-1))  # [B, R, 2]
    return uv, rel.norm(dim=-1), ahead > 1e-8


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear float64 sampling of ``[B, C, H, W]`` at NDC ``grid [B, H, W, 2]`` (pixel centres at +-1)."""
    return F.grid_sample(x.double(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_view(
    image_b: torch.Tensor,        # [B, C, H, W] view B
    depth_b: torch.Tensor,        # [B, 1, H, W] view B's depth (distance along its rays)
    depth_a: torch.Tensor,        # [B, 1, H, W] view A's depth
    camera_a: torch.Tensor,       # [B, 8]
    camera_b: torch.Tensor,       # [B, 8]
    *,
    tolerance: float,             # absolute depth agreement for co-visibility (world units)
    far: float | None = None,     # A's pixels with depth >= far - tolerance are background (never co-visible)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp view B into view A with A's depth; returns warped ``[B, C, H, W]`` and co-visible ``[B, 1, H, W]``.

    Geometry runs in float64 (identical cameras give the identity warp to float precision). See the module
    docstring for the co-visibility rule.
    """
    batch, _, res, res_w = depth_a.shape
    assert res == res_w and image_b.shape[-2:] == depth_b.shape[-2:] == (res, res), "square views of one size"
    origins, dirs = make_rays(camera_a.double(), res)  # [B, H*W, 3] each
    points = origins + dirs * depth_a.double().reshape(batch, res * res, 1)  # [B, H*W, 3]
    uv, dist_b, ahead = _project(points, camera_b.double())  # [B, H*W, 2], [B, H*W], [B, H*W]
    inside = ahead & (uv.abs() <= 1.0 + 1e-9).all(dim=-1)  # [B, H*W]
    grid = torch.stack([uv[..., 0], -uv[..., 1]], dim=-1).view(batch, res, res, 2)  # v = +1 is the top row
    grid = grid.clamp(-2.0, 2.0)  # keep far-off projections finite (they are masked anyway)
    warped = _sample(image_b, grid)  # [B, C, H, W]
    depth_at = _sample(depth_b, grid).view(batch, res * res)  # [B, H*W]
    covisible = inside & ((depth_at - dist_b).abs() <= tolerance)  # [B, H*W]
    if far is not None:
        covisible = covisible & (depth_a.double().view(batch, res * res) < far - tolerance)
    return warped.to(image_b.dtype), covisible.view(batch, 1, res, res)


def _photometric_error(image_a: torch.Tensor, warped: torch.Tensor, covisible: torch.Tensor) -> torch.Tensor:
    """Mean |A - warped| over co-visible pixels and channels, images mapped [-1, 1] -> [0, 1]; ``[B]`` (NaN if none)."""
    unit_a = ((image_a.float() + 1.0) / 2.0).clamp(0.0, 1.0)  # [B, 3, H, W]
    unit_b = ((warped.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    diff = (unit_a - unit_b).abs().mean(dim=1, keepdim=True)  # [B, 1, H, W]
    mask = covisible.float()
    count = mask.flatten(1).sum(dim=1)  # [B]
    total = (diff * mask).flatten(1).sum(dim=1)  # [B]
    return torch.where(count > 0, total / count.clamp(min=1.0), torch.full_like(total, math.nan))


@torch.no_grad()
def multiview_consistency(
    G,                            # stages.nn.generator.Generator (the caller puts it in eval mode)
    inputs: GeneratorInputs,      # n samples, rendered as one batch (the caller chunks)
    *,
    yaw_delta: float = 0.15,      # yaw offset of view B, radians
    truncation_psi: float = 1.0,  # used only without ``ws`` (truncation towards w_avg)
    ws: torch.Tensor | None = None,  # [n, num_ws, w_dim] already mapped (e.g. truncated to the per-class mean)
    generator=None,               # RNG of the renderer: a torch.Generator or per-sample SampleGenerators
    depth_tolerance: float = DEPTH_TOLERANCE,  # fraction of (ray_end - ray_start), see the module docstring
    **render_kwargs,              # G.render options: resolution, ray_end, num_coarse_steps, num_fine_steps, ...
) -> MVCResult:
    """Photometric error after warping view B (yaw + ``yaw_delta``) into view A with A's depth (module docstring)."""
    assert "patch_params" not in render_kwargs, "multi-view consistency renders full images"
    c = inputs.c if inputs.c is not None and inputs.c.shape[-1] > 0 else None
    if ws is None:
        ws = G.mapping(inputs.z, c, truncation_psi=truncation_psi)  # [n, num_ws, w_dim]
    camera_a = G.camera_posterior(inputs.camera_prior, inputs.z, c)  # [n, 8]
    camera_b = camera_a.clone()
    camera_b[:, CAM_YAW] = camera_b[:, CAM_YAW] + yaw_delta
    planes = G.triplanes(ws, noise_mode="const")  # [n, 3, F, R, R]
    image_a, depth_a = G.render(planes, camera_a, generator=generator, **render_kwargs)  # [n, 3, H, W], [n, 1, H, W]
    image_b, depth_b = G.render(planes, camera_b, generator=generator, **render_kwargs)
    ray_end = render_kwargs.get("ray_end") or G.ray_end
    tolerance = depth_tolerance * (ray_end - G.ray_start)
    warped, covisible = warp_view(image_b, depth_b, depth_a, camera_a, camera_b, tolerance=tolerance, far=ray_end)
    errors = _photometric_error(image_a, warped, covisible)  # [n]
    flat_a = depth_a.flatten(1).median(dim=1).values.view(-1, 1, 1, 1).expand_as(depth_a)  # billboard at the median
    warped_flat, _ = warp_view(image_b, depth_b, flat_a, camera_a, camera_b, tolerance=tolerance)
    flat_errors = _photometric_error(image_a, warped_flat, covisible)  # same pixels as the own-depth warp
    return MVCResult(errors=errors.cpu(), covisible=covisible.float().flatten(1).mean(dim=1).cpu(),
                     flat_errors=flat_errors.cpu())


# ---------------------------------------------------------------------------------------------------------------
# Depth realism


def _row_quantiles(values: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation quantile of each row of ``[N, P]`` (no size limit, unlike ``torch.quantile``); ``[N]``."""
    ordered = values.sort(dim=1).values  # [N, P]
    position = q * (values.shape[1] - 1)
    low, frac = int(math.floor(position)), position - math.floor(position)
    high = min(low + 1, values.shape[1] - 1)
    return ordered[:, low] + frac * (ordered[:, high] - ordered[:, low])  # [N]


def normalize_depth_maps(depth: torch.Tensor) -> torch.Tensor:
    """Per-image robust normalisation of ``[N, 1, H, W]`` depth: percentiles 1 / 99 -> 0 / 1, clamped; constant -> 0.5.

    Invariant to any positive affine map of a depth map; returns float32 ``[N, 1, H, W]`` in [0, 1].
    """
    assert depth.ndim == 4 and depth.shape[1] == 1, f"depth must be [N, 1, H, W], got {list(depth.shape)}"
    flat = depth.detach().double().flatten(1)  # [N, P]
    low = _row_quantiles(flat, PERCENTILES[0]).unsqueeze(1)  # [N, 1]
    high = _row_quantiles(flat, PERCENTILES[1]).unsqueeze(1)  # [N, 1]
    span = high - low
    flat_map = span <= 1e-6 * torch.maximum(low.abs(), high.abs()).clamp(min=1e-12)  # [N, 1] (near-)constant maps
    normalized = ((flat - low) / torch.where(flat_map, torch.ones_like(span), span)).clamp(0.0, 1.0)
    normalized = torch.where(flat_map, torch.full_like(normalized, 0.5), normalized)  # [N, P]
    return normalized.float().view_as(depth)


def _pooled_values(depth: torch.Tensor, max_values: int) -> np.ndarray:
    """Normalised values of all maps, pooled and deterministically subsampled to at most ``max_values``."""
    values = normalize_depth_maps(depth).flatten().cpu().numpy()
    if values.size > max_values:
        keep = np.random.default_rng(0).choice(values.size, size=max_values, replace=False)
        values = values[keep]
    return values


def depth_realism(
    fake_depth: torch.Tensor,     # [N, 1, H, W] rendered (raw) depth, larger = farther
    real_depth: torch.Tensor,     # [M, 1, H', W'] dataset depth, larger = farther
    *,
    max_values: int = MAX_DEPTH_VALUES,  # pooled values kept per side
) -> float:
    """1-D Wasserstein distance between pooled per-image-normalised fake and real depth values (lower is better)."""
    from scipy.stats import wasserstein_distance

    assert fake_depth.ndim == 4 and real_depth.ndim == 4, "depth maps must be [N, 1, H, W]"
    if real_depth.shape[-2:] != fake_depth.shape[-2:]:
        real_depth = F.interpolate(real_depth.float(), size=fake_depth.shape[-2:], mode="bilinear",
                                   align_corners=False)  # [M, 1, H, W]
    fake = _pooled_values(fake_depth, max_values)
    real = _pooled_values(real_depth, max_values)
    return float(wasserstein_distance(fake, real))


# ---------------------------------------------------------------------------------------------------------------
# Camera posterior statistics


def camera_posterior_stats(posterior: torch.Tensor, prior: torch.Tensor) -> dict[str, float]:
    """Per-field mean / std of posterior and prior (``yaw/mean``, ``yaw/prior_std``, ...) and ``spread``."""
    for name, cams in (("posterior", posterior), ("prior", prior)):
        assert cams.ndim == 2 and cams.shape[1] == CAMERA_DIM, f"{name} must be [N, 8], got {list(cams.shape)}"
    stats: dict[str, float] = {}
    for field in STAT_FIELDS:
        index = CAMERA_FIELDS.index(field)
        post, pri = posterior[:, index].double(), prior[:, index].double()
        stats[f"{field}/mean"] = float(post.mean())
        stats[f"{field}/std"] = float(post.std(correction=0))
        stats[f"{field}/prior_mean"] = float(pri.mean())
        stats[f"{field}/prior_std"] = float(pri.std(correction=0))
    ratios = [stats[f"{f}/std"] / stats[f"{f}/prior_std"] if stats[f"{f}/prior_std"] > 0 else math.nan
              for f in SPREAD_FIELDS]
    stats["spread"] = float(np.mean(ratios))
    return stats


def planar_depth_baselines(like: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Depth maps shaped ``like`` ``[N, 1, H, W]`` that a renderer with no 3D shape would produce, the scale against
    which depth realism says "more than flat" (issue 21 §3):

    * ``constant``: one depth everywhere (normalises to 0.5: the weakest baseline, which any noise beats);
    * ``tilted_plane``: a plane at an angle to the image (a ramp down the rows: uniform after normalisation);
    * ``noisy_plane``: a plane with small random relief (Gaussian after normalisation).

    Depth realism compares distributions of normalised values, so these two cover what a flat-ish renderer's depth
    can look like; a model's depth is 3D-like only if it is closer to the data than the best of them."""
    n, _, h, w = like.shape
    ramp = torch.linspace(1.0, 2.0, h).view(1, 1, h, 1).expand(n, 1, h, w)
    gen = torch.Generator().manual_seed(seed)
    noisy = 1.0 + 1e-3 * torch.randn((n, 1, h, w), generator=gen)
    return {"constant": torch.ones(n, 1, h, w), "tilted_plane": ramp.contiguous(), "noisy_plane": noisy}
