"""Bias + leaky ReLU + clamp whose derivative is a masked copy of the incoming gradient (3DGP ref §4.1, §5.1).

``bias_lrelu_clamp(x, b, slope, clamp) = clamp(lrelu(x + b, slope), -clamp, clamp)``, for D's convolution layers
off CUDA. The point is the R1 penalty's double backward: with autograd's own ops every layer's activation passes
the gradient through ``clamp``'s backward (four passes: two comparisons, an AND and a ``where``) and
``leaky_relu_backward``, and their double backward adds zero tensors for the (piecewise constant) derivative's
dependence on the activation, which then travel through the layers below. Here the derivative is one op,
``gx = gy * act'(y)`` computed from the saved output y (one pass, a CPU kernel when :mod:`stages.ops._cpu_build`
has one), and that op's own derivative is itself (linear in gy) with no term for y -- exactly what the second
derivative of a piecewise-linear activation is almost everywhere, and what StyleGAN2's CUDA ``bias_act`` does for
lrelu. Values equal the autograd ops' up to float rounding; the clamp boundary |y| = clamp (measure zero) blocks
the gradient. Inside :func:`stages.ops.conv2d_gradfix.no_weight_gradients` (R1's gradient w.r.t. the image) the
bias gradient is skipped like the conv weights'.
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from stages.ops import _impl
from stages.ops.conv2d_gradfix import weight_gradients_disabled

GRAIN = 1 << 16  # elements per thread below which extra threads are not worth waking


def bias_lrelu_clamp(x: torch.Tensor, b: torch.Tensor | None, slope: float = 0.2,
                     clamp: float | None = None) -> torch.Tensor:
    """``clamp(lrelu(x + b[None, :, None, None], slope), -clamp, clamp)`` for ``x [B, C, H, W]`` (module docstring);
    ``b`` None: no bias; ``clamp`` None: no clamp."""
    return _BiasAct.apply(x, b, float(slope), float(clamp) if clamp is not None else -1.0)


def act_grad(gy: torch.Tensor, y: torch.Tensor, slope: float, clamp: float) -> torch.Tensor:
    """``gy * (y > 0 ? 1 : slope) * (|y| < clamp)`` (no clamp when ``clamp <= 0``), in ``y``'s memory layout."""
    if gy.stride() != y.stride():
        gy = torch.empty_like(y).copy_(gy)
    lib = _library(y)
    _impl.record("act_grad", "cpu" if lib is not None else "ref")
    if lib is None:
        gx = torch.ops.aten.leaky_relu_backward(gy, y, slope, True)
        return gx.masked_fill_(y.abs() >= clamp, 0.0) if clamp > 0 else gx
    gx = torch.empty_like(y)
    team = _team(y.numel())
    lib.threedgp_act_grad(gy.data_ptr(), y.data_ptr(), gx.data_ptr(), y.numel(), slope, clamp, ctypes.byref(team))
    return gx


def _library(y: torch.Tensor):
    if y.device.type != "cpu" or y.dtype != torch.float32 or not _dense(y) or y.numel() == 0:
        return None
    from stages.ops._cpu_build import get_library

    return get_library()


def _dense(t: torch.Tensor) -> bool:
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


def _team(numel: int):
    from stages.ops._cpu_build import team

    return team(numel // GRAIN)


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, slope, clamp):
        y = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2))) if b is not None else x.clone()
        F.leaky_relu_(y, slope)
        if clamp > 0:
            y.clamp_(-clamp, clamp)
        ctx.save_for_backward(y)
        ctx.slope, ctx.clamp = slope, clamp
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        gx = _ActGrad.apply(gy, y, ctx.slope, ctx.clamp)
        gb = None
        if ctx.needs_input_grad[1] and not weight_gradients_disabled():
            gb = gx.sum(dim=[d for d in range(gx.ndim) if d != 1])
        return gx, gb, None, None


class _ActGrad(torch.autograd.Function):
    """gx = gy * act'(y): linear in gy, and act' is piecewise constant, so its derivative is itself (no y term)."""

    @staticmethod
    def forward(ctx, gy, y, slope, clamp):
        ctx.save_for_backward(y)
        ctx.slope, ctx.clamp = slope, clamp
        return act_grad(gy, y, slope, clamp)

    @staticmethod
    def backward(ctx, gg):
        (y,) = ctx.saved_tensors
        return _ActGrad.apply(gg, y, ctx.slope, ctx.clamp), None, None, None
