"""The loss terms of 3DGP as small functions (3DGP ref §2.4, §3.5, §4.3, §5.1, §5.2, §5.3).

Every function takes tensors and plain numbers; the phases (``stages.train.phases``) combine them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEPTH_BLUR_WIDTH = 30.0  # fixed width of the extra depth blur kernel (ref §3.5, [quirk])


def gaussian_like_kernel(sigma: float, width: float | None = None, device=None) -> torch.Tensor | None:
    """1-D kernel f[k] ∝ 2^-(k/width)^2 on k in [-floor(3 sigma), floor(3 sigma)], normalised; None if empty.

    ``width`` defaults to ``sigma`` (generic blur, ref §5.2); the extra depth blur uses width 30 (ref §3.5).
    """
    size = int(math.floor(sigma * 3))
    if size <= 0:
        return None
    k = torch.arange(-size, size + 1, device=device, dtype=torch.float32)  # [2 size + 1]
    f = torch.exp2(-(k / (sigma if width is None else width)).square())
    return f / f.sum()


def blur_d_input(img: torch.Tensor, sigma: float, has_depth: bool) -> torch.Tensor:
    """Blur warm-up of a D input ``[B, C, r, r]``: all channels with sigma, then depth again (ref §5.2, §3.5)."""
    from stages.ops import filter2d

    f = gaussian_like_kernel(sigma, device=img.device)
    if f is None:
        return img
    img = filter2d(img, f)  # separable, "same" size
    if has_depth:
        f_depth = gaussian_like_kernel(sigma, width=DEPTH_BLUR_WIDTH, device=img.device)
        img = torch.cat([img[:, :3], filter2d(img[:, 3:], f_depth)], dim=1)
    return img


def g_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss per sample: softplus(-D(G(z))) (ref §5.1). ``[B] -> [B]``."""
    return F.softplus(-fake_logits)


def d_fake_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """D loss on fakes per sample: softplus(D(G(z))) (ref §5.1)."""
    return F.softplus(fake_logits)


def d_real_loss(real_logits: torch.Tensor) -> torch.Tensor:
    """D loss on reals per sample: softplus(-D(x)) (ref §5.1)."""
    return F.softplus(-real_logits)


def kd_loss(kd_features: torch.Tensor, target: torch.Tensor, patch_scales: torch.Tensor) -> torch.Tensor:
    """Per-sample KD loss ||f_D(x) - e||_2 * s / mean(s): plain L2 norm, not squared (ref §4.3). ``[B]``."""
    weights = patch_scales / patch_scales.mean()  # [B]
    return torch.linalg.vector_norm(kd_features - target.to(kd_features.dtype), dim=1) * weights


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """Per-sample ||grad_x D(x)||^2 summed over C, H, W, with a graph for the double backward (ref §5.1)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True, only_inputs=True)
    return grad.square().sum(dim=[1, 2, 3])  # [B]


def sanitize_grads_(params) -> torch.Tensor:
    """NaN -> 0, +-inf -> +-1e5 in every gradient, in place (ref §5.3); returns how many entries were non-finite
    (an int64 tensor on the gradients' device: no host sync)."""
    params = [p for p in params if p.grad is not None]
    if params and params[0].grad.device.type == "cpu":  # a host check is free on CPU: one foreach op, no passes
        peaks = torch._foreach_norm([p.grad for p in params], float("inf"))  # NaN and +-inf propagate
        if bool(torch.stack(peaks).isfinite().all()):
            return torch.zeros((), dtype=torch.int64)
    counts = []
    for p in params:
        if p.grad is not None:
            counts.append((~torch.isfinite(p.grad)).sum())
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
    return torch.stack(counts).sum() if counts else torch.zeros((), dtype=torch.int64)


def lazy_reg_adam_params(lr: float, betas: tuple[float, float], reg_interval: int) -> tuple[float, tuple]:
    """Lazy-regularisation correction for D's Adam: lr * k/(k+1), betas ** (k/(k+1)) (ref §5.3, §13)."""
    if reg_interval <= 0:
        return lr, betas
    ratio = reg_interval / (reg_interval + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)
