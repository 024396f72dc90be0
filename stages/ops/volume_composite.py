"""Classical NeRF alpha compositing along rays (3DGP ref §1.5, §1.6 step 7).

    delta_i = t_{i+1} - t_i,  delta_last = 1e10 (the last sample is opaque: it acts as the background)
    sigma_i = softplus(sigma_raw_i)                      (beta = 1)
    alpha_i = 1 - exp(-sigma_i * delta_i)
    T_i     = prod_{j<i} (1 - alpha_j + 1e-10),  T_0 = 1
    w_i     = alpha_i * T_i
    rgb     = sum_i w_i * rgb_i,   depth = sum_i w_i * t_i   (not divided by sum w, which is ~1 anyway)

The reference path is the spec; the CUDA path (``csrc/volume_composite.cu``) runs one thread per ray, forward
and backward, and falls back to the reference for second-order gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.ops import _impl

LAST_DELTA = 1e10  # the last sample's interval: makes it fully opaque (ref §1.5)
TRANSMITTANCE_EPS = 1e-10  # added to (1 - alpha) in the transmittance product (ref §1.6 step 7)
CUDA_DTYPES = (torch.float32, torch.float64)


def composite(
    rgb: torch.Tensor,
    sigma_raw: torch.Tensor,
    t: torch.Tensor,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite samples along each ray (3DGP ref §1.6 step 7, classical ray marcher).

    Args:
        rgb: per-sample colours or features ``[R, S, C]``.
        sigma_raw: densities before the softplus ``[R, S]``.
        t: sample distances along the ray ``[R, S]``, sorted ascending.
        impl: "auto", "ref" or "cuda"; CPU tensors always use "ref". The CUDA kernel covers float32/float64.

    Returns:
        ``(rgb_out [R, C], depth [R, 1], weights [R, S])``, differentiable w.r.t. ``rgb``, ``sigma_raw`` and ``t``.
    """
    if rgb.ndim != 3 or sigma_raw.shape != rgb.shape[:2] or t.shape != rgb.shape[:2]:
        raise ValueError(f"composite: expected rgb [R, S, C], sigma_raw [R, S], t [R, S]; got {tuple(rgb.shape)}, "
            f"{tuple(sigma_raw.shape)}, {tuple(t.shape)}",
        )
    covered = rgb.dtype == sigma_raw.dtype == t.dtype and rgb.dtype in CUDA_DTYPES
    why = None if covered else f"rgb {rgb.dtype}, sigma {sigma_raw.dtype}, t {t.dtype}"
    ext = _impl.choose("composite", impl, rgb, cuda_ok=covered and rgb.numel() > 0, why=why)
    if ext is not None:
        from stages.ops._composite_cuda import composite_cuda

        return composite_cuda(ext, rgb, sigma_raw, t)
    return composite_ref(rgb, sigma_raw, t)


def composite_weights_ref(sigma_raw: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Compositing weights ``w [R, S]`` of the classical marcher (3DGP ref §1.6 step 7)."""
    delta = t[:, 1:] - t[:, :-1]  # [R, S-1]
    delta = torch.cat([delta, torch.full_like(t[:, :1], LAST_DELTA)], dim=1)  # [R, S]
    sigma = F.softplus(sigma_raw)  # [R, S]
    alpha = 1 - torch.exp(-sigma * delta)  # [R, S]
    survive = 1 - alpha + TRANSMITTANCE_EPS  # [R, S]
    transmittance = torch.cumprod(torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], dim=1), dim=1)
    return alpha * transmittance  # [R, S]


def composite_ref(
    rgb: torch.Tensor,
    sigma_raw: torch.Tensor,
    t: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference :func:`composite` in plain differentiable PyTorch (any order of derivatives) (3DGP ref §1.6)."""
    weights = composite_weights_ref(sigma_raw, t)  # [R, S]
    rgb_out = (weights[..., None] * rgb).sum(dim=1)  # [R, C]
    depth = (weights * t).sum(dim=1, keepdim=True)  # [R, 1]
    return rgb_out, depth, weights
