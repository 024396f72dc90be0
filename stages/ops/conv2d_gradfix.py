"""2-D convolution with a cheap exact double backward, and ``no_weight_gradients`` for R1 (3DGP ref §9, §5.1).

The R1 penalty differentiates ||grad_x D(x)||^2 w.r.t. D's weights, i.e. it backpropagates through the backward
of every convolution. PyTorch's native double backward of ``F.conv2d`` on CPU computes the weight-gradient term
as a convolution of the transposed tensors (batch as channels, the whole image as the kernel), which is several
times slower than the native weight-gradient kernel. This module writes the convolution as three custom autograd
functions that are each other's derivatives and run only native kernels:

* ``conv(x, w)``                  -- forward: ``F.conv2d``;
* ``input_grad(gy, w)``           -- d conv / dx applied to gy: ``F.conv_transpose2d``;
* ``weight_grad(x, gy)``          -- d conv / dw applied to gy: ``aten.convolution_backward`` (weight only).

On CPU the 3x3 stride-1 ones that are large enough run all three by Winograd's F(4x4, 3x3) instead
(:mod:`stages.ops.winograd`: the same function to ~1e-5 relative, 1.5-2x faster here).

Each is bilinear, so the gradient of each is again one of the three, and derivatives of any order are exact.
Under autocast both operands are cast to the autocast dtype first, so backward passes (which run outside autocast)
see one dtype.

:func:`no_weight_gradients` is the idea of the StyleGAN2-ADA "gradfix" (written from its description): the first
R1 backward asks only for the gradient w.r.t. the input image, but a custom function cannot see that, so inside
this context ``conv`` skips the weight gradient (returns None). Use it only around an ``autograd.grad`` call whose
``inputs`` are not convolution weights (the R1 gradient w.r.t. the image).

The flag is process-wide, as in StyleGAN2-ADA, not thread-local: on CUDA the autograd engine runs backward on its own
per-device worker thread, where a thread-local flag set by the caller would read False and R1 would build every
weight gradient for nothing (issue 18 row 7). Consequence: one process must not run two trainers' backward passes
concurrently in different threads (nothing in 3dgp does).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from stages.ops import winograd

_weight_gradients_disabled = False  # process-wide: backward may run on autograd's device thread (module docstring)


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True):
    """Inside, :func:`conv2d` does not compute weight gradients (3DGP ref §9 ``conv2d_gradfix``).

    Only for a backward pass that does not need them, e.g. ``torch.autograd.grad(logits, image)`` of R1.
    """
    global _weight_gradients_disabled
    previous = _weight_gradients_disabled
    _weight_gradients_disabled = previous or disable
    try:
        yield
    finally:
        _weight_gradients_disabled = previous


def weight_gradients_disabled() -> bool:
    """True inside :func:`no_weight_gradients`, in every thread (autograd's worker threads included)."""
    return _weight_gradients_disabled


def conv2d(x: torch.Tensor, w: torch.Tensor, stride=1, padding=0, groups: int = 1) -> torch.Tensor:
    """``F.conv2d(x, w, stride=stride, padding=padding, groups=groups)`` (no bias, no dilation) with the fast
    exact higher-order derivatives described in the module docstring."""
    meta = (_pair(stride), _pair(padding), int(groups))
    device_type = x.device.type
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):  # bf16 runs (stages.nn.precision): one dtype for every derivative
        dtype = torch.get_autocast_dtype(device_type)
        x, w = x.to(dtype), w.to(dtype)
    return _Conv.apply(x, w, meta)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _input_grad(gy: torch.Tensor, w: torch.Tensor, meta, in_hw: tuple[int, int]) -> torch.Tensor:
    """The gradient w.r.t. the input of a conv with weight ``w`` given the output gradient ``gy`` (native)."""
    stride, padding, groups = meta
    out_ch, in_ch, kh, kw = w.shape
    if (tuple(in_hw) == tuple(gy.shape[2:]) and w.dtype == gy.dtype
            and winograd.usable(gy, (in_ch, out_ch, kh, kw), stride, padding, groups)):
        return winograd.conv3x3_input_grad(gy, w)
    out_pad = [in_hw[i] - ((gy.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + (kh, kw)[i]) for i in range(2)]
    return F.conv_transpose2d(gy, w, stride=stride, padding=padding, output_padding=out_pad, groups=groups)


def _weight_grad(x: torch.Tensor, gy: torch.Tensor, w_shape, meta) -> torch.Tensor:
    """The gradient w.r.t. the weight of a conv of input ``x`` given the output gradient ``gy`` (native kernel)."""
    stride, padding, groups = meta
    if gy.dtype == x.dtype and winograd.usable(x, w_shape, stride, padding, groups):
        return winograd.conv3x3_weight_grad(x, gy)
    w_dummy = x.new_empty(w_shape)  # only its shape is read
    _, gw, _ = torch.ops.aten.convolution_backward(gy, x, w_dummy, None, stride, padding, (1, 1), False, (0, 0),
                                                  groups, (False, True, False))
    return gw


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, meta):
        ctx.save_for_backward(x, w)
        ctx.meta = meta
        stride, padding, groups = meta
        if winograd.usable(x, w.shape, stride, padding, groups) and w.dtype == x.dtype:
            return winograd.conv3x3(x, w, remember=ctx.needs_input_grad[1])
        return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _InputGrad.apply(gy, w, ctx.meta, (x.shape[2], x.shape[3]))
        if ctx.needs_input_grad[1] and not weight_gradients_disabled():
            gw = _WeightGrad.apply(x, gy, ctx.meta, tuple(w.shape))
        return gx, gw, None


class _InputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gy, w, meta, in_hw):
        ctx.save_for_backward(gy, w)
        ctx.meta = meta
        return _input_grad(gy, w, meta, in_hw)

    @staticmethod
    def backward(ctx, gg):  # gg: gradient w.r.t. the computed input gradient
        gy, w = ctx.saved_tensors
        d_gy = d_w = None
        with winograd.share(gg):  # gg's Winograd tiles serve both products
            if ctx.needs_input_grad[0]:
                d_gy = _Conv.apply(gg, w, ctx.meta)
            if ctx.needs_input_grad[1]:
                d_w = _WeightGrad.apply(gg, gy, ctx.meta, tuple(w.shape))
        return d_gy, d_w, None, None


class _WeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gy, meta, w_shape):
        ctx.save_for_backward(x, gy)
        ctx.meta = meta
        return _weight_grad(x, gy, w_shape, meta)

    @staticmethod
    def backward(ctx, gg):  # gg: gradient w.r.t. the computed weight gradient, shaped like the weight
        x, gy = ctx.saved_tensors
        d_x = d_gy = None
        if ctx.needs_input_grad[0]:
            d_x = _InputGrad.apply(gy, gg, ctx.meta, (x.shape[2], x.shape[3]))
        if ctx.needs_input_grad[1]:
            d_gy = _Conv.apply(x, gg, ctx.meta)
        return d_x, d_gy, None, None
