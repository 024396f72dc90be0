"""Autograd wrapper of the upfirdn2d CUDA kernel (3DGP ref §9).

The gradient of upfirdn2d is again an upfirdn2d: the output gradient is zero-inserted by ``down``, padded,
filtered with the flipped filter and decimated by ``up`` (:func:`grad_params`). The backward therefore calls
the same autograd function, so derivatives of every order run on the kernel.
"""
from __future__ import annotations

import math

import torch


def grad_params(in_size: int, up: int, down: int, pad0: int, pad1: int, taps: int):
    """For one axis: ``(up, down, pad0, pad1)`` of the upfirdn2d that maps an output gradient to the input's.

    Forward: ``in_size*up`` zero-inserted samples, padded by (pad0, pad1), a valid filter of ``taps`` taps
    (``conv_size`` outputs), every ``down``-th kept (``out_size``). The adjoint zero-inserts ``out_size*down``
    samples (cropping the ``out_size*down - conv_size`` extra ones), does the full correlation (pad ``taps - 1``),
    removes the forward padding and keeps every ``up``-th sample, which gives back exactly ``in_size``.
    """
    conv_size = in_size * up + pad0 + pad1 - taps + 1
    out_size = (conv_size - 1) // down + 1
    return down, up, taps - 1 - pad0, conv_size - out_size * down + taps - 1 - pad1


class _UpFirDn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f2d, ext, up_x, up_y, down_x, down_y, pads, flip_filter):  # noqa: D401
        # The kernel correlates; convolution (flip_filter=False) means flipped taps.
        taps = (f2d if flip_filter else f2d.flip([0, 1])).to(device=x.device, dtype=torch.float32).contiguous()
        y = ext.upfirdn2d_forward(x.contiguous(), taps, up_x, up_y, down_x, down_y, *pads)
        ctx.params = (f2d, ext, up_x, up_y, down_x, down_y, pads, flip_filter, x.shape[2], x.shape[3])
        return y

    @staticmethod
    def backward(ctx, dy):
        f2d, ext, up_x, up_y, down_x, down_y, pads, flip_filter, in_h, in_w = ctx.params
        gux, gdx, gx0, gx1 = grad_params(in_w, up_x, down_x, pads[0], pads[1], f2d.shape[1])
        guy, gdy, gy0, gy1 = grad_params(in_h, up_y, down_y, pads[2], pads[3], f2d.shape[0])
        dx = _UpFirDn2dCuda.apply(dy, f2d, ext, gux, guy, gdx, gdy, (gx0, gx1, gy0, gy1), not flip_filter)
        return dx, None, None, None, None, None, None, None, None


def upfirdn2d_cuda(ext, x, f, up, down, pads, flip_filter, gain):
    """Run :func:`stages.ops.upfirdn2d.upfirdn2d` on the CUDA kernel; a 1-D filter runs as two 1-D passes."""
    f = f.to(device=x.device, dtype=torch.float32)
    x0, x1, y0, y1 = pads
    if f.ndim == 2:
        return _UpFirDn2dCuda.apply(x, f * gain, ext, up, up, down, down, (x0, x1, y0, y1), flip_filter)
    f = f * math.sqrt(gain)  # the separable filter's gain is split over the two axes (as in setup_filter)
    x = _UpFirDn2dCuda.apply(x, f[None, :], ext, up, 1, down, 1, (x0, x1, 0, 0), flip_filter)  # along W
    return _UpFirDn2dCuda.apply(x, f[:, None], ext, 1, up, 1, down, (0, 0, y0, y1), flip_filter)  # along H
