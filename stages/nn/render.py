"""Volume rendering: stratified + importance sampling and the classical marcher (3DGP ref §1.5, §1.6, §6.5).

``render_rays`` is functional: it takes a ``decode_fn(points [B, N, 3]) -> (rgb [B, N, C], sigma_raw [B, N])``
(the tri-plane + MLP decoder, ref §1.3) and the rays of ``stages.nn.rays.make_rays``. Per chunk of rays it

1. draws ``num_coarse`` stratified samples in s-space ([0, 1], jittered in train AND eval, ref §1.6 step 1) and maps
   them to t = ray_start + s (ray_end - ray_start) (no contraction, ref §1.5);
2. decodes them, adding N(0, density_noise_std^2) to the raw density (ref §1.6 step 2);
3. runs the classical marcher on the coarse samples with **s-space depths** [quirk, ref §1.6 step 3];
4. draws ``num_fine`` importance samples from the coarse weights (``sample_pdf``, ref §1.6 step 4), without gradient;
5. decodes them (density noise again), merges and sorts all samples by t, and composites in t-space (step 6, 7).

Deliberate deviation (only affects a ``num_fine=0`` ablation): with no importance samples the official code
composites the coarse samples with the s-space depths of step 3 (deltas in s units, depth in [0, 1]). We composite
them in t-space like the fine pass (deltas and depth in world units), which is the physically meaningful render and
keeps ``depth`` in world units whatever ``num_fine`` is. With ``num_fine > 0`` (every official config) the output
is identical to the official one.

``cut_quantile`` q > 0 (used by the non-flatness score, ref §6.5 step 2) zeroes, in both marcher calls, every
density below the q-quantile of the whole density tensor of the current chunk (all images and rays of the chunk).
The official eval code uses chunks of 43,690 rays for 4 images; pass ``chunk_rays`` to reproduce that.

The compositing itself is ``stages.ops.composite`` (softplus density, last delta 1e10, +1e-10 in T, depth = sum w t).

Public API:
  render_rays(decode_fn, origins [B, R, 3], dirs [B, R, 3], *, ...) -> dict(rgb [B, R, C], depth [B, R, 1],
      weights [B, R, S], t [B, R, S], weight_sum [B, R, 1]) with S = num_coarse + num_fine
  stratified_samples(shape, num_samples, ...) -> [*shape, num_samples] in [0, 1]
  sample_pdf(bins [N, M], weights [N, M - 1], num_samples, ...) -> [N, num_samples]
  cut_densities_below_quantile(sigma_raw, q) -> sigma_raw with the cut densities sent to -inf-like values
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from stages.nn import rng
from stages.ops import composite

DecodeFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

WEIGHT_EPS = 1e-5  # added to the coarse weights and again inside sample_pdf (ref §1.6 step 4)


def stratified_samples(
    shape: tuple[int, ...],
    num_samples: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Jittered stratified samples in s-space [0, 1] (3DGP ref §1.6 step 1).

    The strata are delimited by the midpoints of linspace(0, 1, num_samples); the first is [0, m_0] and the last
    [m_last, 1]. Each sample is uniform inside its stratum, so the output is sorted along the last dimension.
    Returns ``[*shape, num_samples]``.
    """
    base = torch.linspace(0.0, 1.0, num_samples, device=device, dtype=dtype)  # [S]
    mids = 0.5 * (base[1:] + base[:-1])  # [S - 1]
    lower = torch.cat([base[:1], mids])  # [S]
    upper = torch.cat([mids, base[-1:]])  # [S]
    jitter = rng.rand((*shape, num_samples), generator, device, dtype)  # drawn on the generator's device
    return lower + (upper - lower) * jitter  # [*shape, S]


def sample_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    eps: float = WEIGHT_EPS,
) -> torch.Tensor:
    """Inverse-CDF sampling of a piecewise-constant PDF, the NeRF ``sample_pdf`` (3DGP ref §1.6 step 4).

    Args:
        bins: ``[N, M]`` sorted bin edges.
        weights: ``[N, M - 1]`` non-negative bin weights; ``eps`` is added before normalising.
        num_samples: samples per row; u ~ U[0, 1) is random (not the deterministic variant).
    Returns:
        ``[N, num_samples]`` samples (unsorted), without gradient.
    """
    with torch.no_grad():
        weights = weights + eps  # [N, M - 1]
        pdf = weights / weights.sum(dim=-1, keepdim=True)
        cdf = torch.cumsum(pdf, dim=-1)
        cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1).contiguous()  # [N, M]
        u = rng.rand((cdf.shape[0], num_samples), generator, cdf.device, cdf.dtype)  # [N, K]
        index = torch.searchsorted(cdf, u.contiguous(), right=True)  # [N, K]
        below = (index - 1).clamp(min=0)
        above = index.clamp(max=cdf.shape[-1] - 1)
        cdf_below, cdf_above = cdf.gather(-1, below), cdf.gather(-1, above)  # [N, K]
        bins_below, bins_above = bins.gather(-1, below), bins.gather(-1, above)  # [N, K]
        denom = cdf_above - cdf_below
        denom = torch.where(denom < eps, torch.ones_like(denom), denom)  # flat bins: denominator 1
        frac = (u - cdf_below) / denom
        return bins_below + frac * (bins_above - bins_below)  # [N, K]


def cut_densities_below_quantile(sigma_raw: torch.Tensor, quantile: float) -> torch.Tensor:
    """Zero every density below the ``quantile`` of the whole tensor (3DGP ref §1.6 step 7, §6.5 step 2).

    The quantile (linear interpolation, like ``torch.quantile``) is taken over softplus(sigma_raw) of the entire
    tensor, without the 16M-element limit of ``torch.quantile``. Cut entries get the most negative finite raw
    value, whose softplus is exactly 0 in the marcher. Returns a new tensor shaped like ``sigma_raw``.
    """
    if quantile <= 0.0:
        return sigma_raw
    density = F.softplus(sigma_raw.detach()).flatten()  # [N]
    position = quantile * (density.numel() - 1)
    low, frac = int(position), position - int(position)
    low_value = torch.kthvalue(density, low + 1).values
    high_value = torch.kthvalue(density, min(low + 2, density.numel())).values
    threshold = low_value + frac * (high_value - low_value)
    cut = F.softplus(sigma_raw.detach()) < threshold
    return sigma_raw.masked_fill(cut, torch.finfo(sigma_raw.dtype).min)


def _decode_samples(
    decode_fn: DecodeFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    t: torch.Tensor,
    density_noise_std: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the points o + t d; add density noise to the raw sigma (3DGP ref §1.6 steps 2 and 5).

    ``origins``/``dirs`` are ``[B, R, 3]``, ``t`` is ``[B, R, S]``; returns rgb ``[B, R, S, C]``, sigma ``[B, R, S]``.
    """
    batch_size, num_rays, num_samples = t.shape
    points = origins.unsqueeze(2) + dirs.unsqueeze(2) * t.unsqueeze(-1)  # [B, R, S, 3]
    rgb, sigma_raw = decode_fn(points.reshape(batch_size, num_rays * num_samples, 3))
    assert rgb.ndim == 3 and rgb.shape[:2] == (batch_size, num_rays * num_samples), "decode_fn rgb must be [B, N, C]"
    assert sigma_raw.shape == (batch_size, num_rays * num_samples), "decode_fn sigma must be [B, N]"
    if density_noise_std > 0:
        noise = rng.randn(sigma_raw.shape, generator, sigma_raw.device, sigma_raw.dtype)  # [B, N]
        sigma_raw = sigma_raw + noise * density_noise_std
    rgb = rgb.reshape(batch_size, num_rays, num_samples, rgb.shape[-1])  # [B, R, S, C]
    return rgb, sigma_raw.reshape(batch_size, num_rays, num_samples)  # [B, R, S]


def _composite(rgb, sigma_raw, depths, cut_quantile: float, impl: str):
    """Classical marcher on ``[B, R, S, C]`` / ``[B, R, S]`` samples; returns rgb, depth, weights unflattened."""
    batch_size, num_rays, num_samples, channels = rgb.shape
    sigma_raw = cut_densities_below_quantile(sigma_raw, cut_quantile)
    rgb_out, depth, weights = composite(
        rgb.reshape(-1, num_samples, channels),
        sigma_raw.reshape(-1, num_samples),
        depths.reshape(-1, num_samples),
        impl=impl,
    )  # [B*R, C], [B*R, 1], [B*R, S]
    return (
        rgb_out.view(batch_size, num_rays, channels),
        depth.view(batch_size, num_rays, 1),
        weights.view(batch_size, num_rays, num_samples),
    )


def _render_chunk(decode_fn, origins, dirs, *, ray_start, ray_end, num_coarse, num_fine,
                  density_noise_std, cut_quantile, generator, composite_impl) -> dict[str, torch.Tensor]:
    """Coarse pass, importance sampling, fine pass and final composite for one chunk (3DGP ref §1.6)."""
    batch_size, num_rays, _ = origins.shape
    span = ray_end - ray_start
    s_coarse = stratified_samples((batch_size, num_rays), num_coarse, generator, origins.device, origins.dtype)
    t_coarse = ray_start + s_coarse * span  # [B, R, Sc]
    rgb_c, sigma_c = _decode_samples(decode_fn, origins, dirs, t_coarse, density_noise_std, generator)
    if num_fine > 0:
        # [quirk] the proposal weights are computed with s-space depths, i.e. deltas divided by (end - start).
        with torch.no_grad():
            _, _, w_coarse = _composite(rgb_c, sigma_c, s_coarse, cut_quantile, composite_impl)  # [B, R, Sc]
            w_coarse = w_coarse.reshape(-1, num_coarse) + WEIGHT_EPS  # [B*R, Sc]
            s_flat = s_coarse.reshape(-1, num_coarse)
            bins = 0.5 * (s_flat[:, 1:] + s_flat[:, :-1])  # [B*R, Sc - 1] midpoints
            s_fine = sample_pdf(bins, w_coarse[:, 1:-1], num_fine, generator)  # [B*R, Sf]
            t_fine = ray_start + s_fine.view(batch_size, num_rays, num_fine) * span  # [B, R, Sf]
        rgb_f, sigma_f = _decode_samples(decode_fn, origins, dirs, t_fine, density_noise_std, generator)
        t_all = torch.cat([t_coarse, t_fine], dim=-1)  # [B, R, S]
        t_all, order = torch.sort(t_all, dim=-1)
        sigma_all = torch.cat([sigma_c, sigma_f], dim=-1).gather(-1, order)  # [B, R, S]
        rgb_all = torch.cat([rgb_c, rgb_f], dim=2)
        rgb_all = rgb_all.gather(2, order.unsqueeze(-1).expand(-1, -1, -1, rgb_all.shape[-1]))  # [B, R, S, C]
    else:  # deliberate deviation: official composites these in s-space (see the module docstring)
        t_all, sigma_all, rgb_all = t_coarse, sigma_c, rgb_c
    rgb, depth, weights = _composite(rgb_all, sigma_all, t_all, cut_quantile, composite_impl)
    return {"rgb": rgb, "depth": depth, "weights": weights, "t": t_all, "weight_sum": weights.sum(-1, keepdim=True)}


def _check_options(ray_start, ray_end, num_coarse, num_fine, density_noise_std, cut_quantile, chunk_rays) -> None:
    if not ray_start < ray_end:
        raise ValueError(f"ray_start: must be below ray_end, got {ray_start} >= {ray_end}")
    if num_coarse < 3:
        raise ValueError(f"num_coarse: needs at least 3 samples for importance sampling, got {num_coarse}")
    if num_fine < 0:
        raise ValueError(f"num_fine: must be >= 0, got {num_fine}")
    if density_noise_std < 0:
        raise ValueError(f"density_noise_std: must be >= 0, got {density_noise_std}")
    if not 0.0 <= cut_quantile < 1.0:
        raise ValueError(f"cut_quantile: must be in [0, 1), got {cut_quantile}")
    if chunk_rays is not None and chunk_rays < 1:
        raise ValueError(f"chunk_rays: must be >= 1, got {chunk_rays}")


def render_rays(
    decode_fn: DecodeFn,            # points [B, N, 3] -> (rgb [B, N, C], sigma_raw [B, N]) (ref §1.3).
    origins: torch.Tensor,          # [B, R, 3] ray origins.
    dirs: torch.Tensor,             # [B, R, 3] unit ray directions.
    *,
    ray_start: float = 0.75,        # Near bound of the sampled interval (ref §1.5).
    ray_end: float = 1.25,          # Far bound; the last sample is opaque (delta 1e10).
    num_coarse: int = 32,           # Stratified samples per ray (ref §1.6 step 1).
    num_fine: int = 32,             # Importance samples per ray (ref §1.6 step 4); 0 = coarse only.
    density_noise_std: float = 0.0,  # Std of the noise added to raw density at both passes (ref §1.6 step 2).
    cut_quantile: float = 0.0,      # Zero densities below this quantile of each chunk (NFS, ref §6.5).
    chunk_rays: int | None = None,  # Render at most this many rays per image at once (None = all).
    generator: torch.Generator | None = None,  # RNG for jitter, importance samples and noise.
    composite_impl: str = "auto",   # stages.ops.composite implementation: 'auto', 'ref' or 'cuda'.
) -> dict[str, torch.Tensor]:
    """Render rays through a decoder with the 3DGP importance renderer (3DGP ref §1.5, §1.6).

    Returns a dict of ``rgb [B, R, C]`` (raw, unbounded composite), ``depth [B, R, 1]`` (sum w t, world units),
    ``weights [B, R, S]`` and ``t [B, R, S]`` (the sorted final samples, S = num_coarse + num_fine) and
    ``weight_sum [B, R, 1]``. Differentiable w.r.t. the decoder, ``origins`` and ``dirs``. With ``num_fine=0``
    the coarse samples are composited in t-space (world units), unlike the official s-space composite: a
    deliberate deviation (module docstring). ``generator`` may live on another device than the rays.
    """
    _check_options(ray_start, ray_end, num_coarse, num_fine, density_noise_std, cut_quantile, chunk_rays)
    assert origins.shape == dirs.shape and origins.ndim == 3 and origins.shape[-1] == 3, "rays must be [B, R, 3]"
    num_rays = origins.shape[1]
    step = num_rays if chunk_rays is None else min(chunk_rays, num_rays)
    kwargs = dict(ray_start=ray_start, ray_end=ray_end, num_coarse=num_coarse, num_fine=num_fine,
                  density_noise_std=density_noise_std, cut_quantile=cut_quantile, generator=generator,
                  composite_impl=composite_impl)
    chunks = [
        _render_chunk(decode_fn, origins[:, i:i + step], dirs[:, i:i + step], **kwargs)
        for i in range(0, num_rays, step)
    ]
    if len(chunks) == 1:
        return chunks[0]
    return {key: torch.cat([c[key] for c in chunks], dim=1) for key in chunks[0]}
