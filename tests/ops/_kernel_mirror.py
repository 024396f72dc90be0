"""A CPU mirror of the CUDA extension's functions, written after the kernels in stages/ops/csrc/.

It has the same call signatures as the compiled ``threedgp_ops`` module and follows each kernel's algorithm
(index arithmetic of upfirdn2d.cu, the derivative table of bias_act.cu, the reverse sweep of
volume_composite.cu), vectorised over the threads' index. With it the autograd wrappers in
``stages/ops/_*_cuda.py`` and the kernels' maths can be tested on a machine without a GPU.
"""
from __future__ import annotations

import math

import torch

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _act_value(act, x, alpha):
    return [
        lambda: x,
        lambda: torch.where(x > 0, x, torch.zeros_like(x)),
        lambda: torch.where(x > 0, x, x * alpha),
        lambda: torch.tanh(x),
        lambda: torch.sigmoid(x),
        lambda: torch.where(x > 0, x, torch.expm1(x)),
        lambda: SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * torch.expm1(x)),
        lambda: torch.where(x > 20, x, torch.log1p(torch.exp(x))),
        lambda: x * torch.sigmoid(x),
    ][act]()


def _act_slope(act, x, alpha):
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    s = torch.sigmoid(x)
    return [
        lambda: one,
        lambda: torch.where(x > 0, one, zero),
        lambda: torch.where(x > 0, one, one * alpha),
        lambda: 1 - torch.tanh(x) ** 2,
        lambda: s * (1 - s),
        lambda: torch.where(x > 0, one, torch.exp(x)),
        lambda: SELU_SCALE * torch.where(x > 0, one, SELU_ALPHA * torch.exp(x)),
        lambda: torch.where(x > 20, one, s),
        lambda: s + x * s * (1 - s),
    ][act]()


def _biased(x, b, dim):
    if b.numel() == 0:
        return x.double()
    step_b = math.prod(x.shape[dim + 1:])
    idx = (torch.arange(x.numel()) // step_b) % b.shape[0]  # the kernel's bias index
    return (x.reshape(-1).double() + b.double()[idx]).reshape(x.shape)


def _first_tap(base, up):
    r = base % up  # Python's % is already non-negative, like the kernel's fix-up
    return torch.where(r == 0, torch.zeros_like(r), up - r)


class MirrorExtension:
    """Stands in for the compiled extension module (same function names and arguments)."""

    def __init__(self):
        self.calls: list[str] = []

    def bias_act_forward(self, x, b, dim, act, alpha, gain, clamp):
        self.calls.append("bias_act_forward")
        v = _act_value(act, _biased(x, b, dim), alpha) * gain
        if clamp >= 0:
            v = v.clamp(-clamp, clamp)
        return v.to(x.dtype)

    def bias_act_backward(self, dy, x, b, dim, act, alpha, gain, clamp):
        self.calls.append("bias_act_backward")
        pre = _biased(x, b, dim)
        g = dy.double() * _act_slope(act, pre, alpha) * gain
        if clamp >= 0:
            v = _act_value(act, pre, alpha) * gain
            g = torch.where((v > clamp) | (v < -clamp), torch.zeros_like(g), g)
        return g.to(x.dtype)

    def upfirdn2d_forward(self, x, taps, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
        self.calls.append("upfirdn2d_forward")
        batch, chans, in_h, in_w = x.shape
        taps_h, taps_w = taps.shape
        out_h = (in_h * up_y + pad_y0 + pad_y1 - taps_h) // down_y + 1
        out_w = (in_w * up_x + pad_x0 + pad_x1 - taps_w) // down_x + 1
        base_y = torch.arange(out_h) * down_y - pad_y0  # [out_h] upsampled row of tap 0
        base_x = torch.arange(out_w) * down_x - pad_x0  # [out_w]
        acc = torch.zeros(batch, chans, out_h, out_w, dtype=torch.float64)
        planes = x.double()
        for ky in range(taps_h):
            uy = base_y + ky
            ok_y = (ky >= _first_tap(base_y, up_y)) & ((ky - _first_tap(base_y, up_y)) % up_y == 0)
            ok_y &= (uy >= 0) & (uy < in_h * up_y)
            for kx in range(taps_w):
                ux = base_x + kx
                ok_x = (kx >= _first_tap(base_x, up_x)) & ((kx - _first_tap(base_x, up_x)) % up_x == 0)
                ok_x &= (ux >= 0) & (ux < in_w * up_x)
                rows = torch.where(ok_y, uy // up_y, 0)
                cols = torch.where(ok_x, ux // up_x, 0)
                vals = planes[:, :, rows][:, :, :, cols]  # [B, C, out_h, out_w]
                mask = (ok_y[:, None] & ok_x[None, :]).double()
                acc += float(taps[ky, kx]) * vals * mask
        return acc.to(x.dtype)

    def composite_forward(self, rgb, sigma_raw, t):
        self.calls.append("composite_forward")
        num_rays, num_samples, _ = rgb.shape
        weights, trans = torch.zeros_like(t), torch.zeros_like(t)
        T = torch.ones(num_rays, dtype=t.dtype)
        depth = torch.zeros(num_rays, dtype=t.dtype)
        for i in range(num_samples):
            delta = t[:, i + 1] - t[:, i] if i + 1 < num_samples else torch.full_like(T, 1e10)
            alpha = 1 - torch.exp(-torch.nn.functional.softplus(sigma_raw[:, i]) * delta)
            weights[:, i], trans[:, i] = alpha * T, T
            depth += alpha * T * t[:, i]
            T = T * (1 - alpha + 1e-10)
        rgb_out = (weights[..., None] * rgb).sum(1)
        return [rgb_out, depth[:, None], weights, trans]

    def composite_backward(self, rgb, sigma_raw, t, weights, trans, g_rgb, g_depth, g_weights):
        self.calls.append("composite_backward")
        num_rays, num_samples, _ = rgb.shape
        d_rgb, d_sigma, d_t = torch.zeros_like(rgb), torch.zeros_like(t), torch.zeros_like(t)
        acc_after = torch.zeros(num_rays, dtype=t.dtype)
        next_ga, next_q = torch.zeros_like(acc_after), torch.ones_like(acc_after)
        gd = g_depth[:, 0]
        for i in reversed(range(num_samples)):
            w = weights[:, i]
            G = g_weights[:, i] + gd * t[:, i] + (g_rgb * rgb[:, i]).sum(-1)
            d_rgb[:, i] = w[:, None] * g_rgb
            acc_after = next_ga + next_q * acc_after if i + 1 < num_samples else torch.zeros_like(acc_after)
            s = sigma_raw[:, i]
            sigma = torch.nn.functional.softplus(s)
            delta = t[:, i + 1] - t[:, i] if i + 1 < num_samples else torch.full_like(s, 1e10)
            e = torch.exp(-sigma * delta)
            alpha = 1 - e
            g_alpha = trans[:, i] * (G - acc_after)
            d_sigma[:, i] = g_alpha * delta * e * torch.where(s > 20, torch.ones_like(s), torch.sigmoid(s))
            dt = w * gd
            if i + 1 < num_samples:
                g_delta = g_alpha * sigma * e
                dt = dt - g_delta
                d_t[:, i + 1] += g_delta
            d_t[:, i] = dt
            next_ga, next_q = G * alpha, 1 - alpha + 1e-10
        return [d_rgb, d_sigma, d_t]
