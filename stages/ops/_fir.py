"""Depthwise FIR filtering with a fixed filter, differentiable to any order without grouped-conv double backward.

The reference ``upfirdn2d`` (3DGP ref §9) filters every channel with the same small FIR filter. Written as a
grouped ``F.conv2d`` (``groups = C``) it is correct, but PyTorch's native double backward of a grouped convolution
on CPU splits into one small convolution per group and also computes the (unneeded) gradient of the fixed filter,
which made the R1 pass of the discriminator (ref §5.1) spend ~1/4 of its time there.

:func:`fir_correlate` is the same depthwise valid correlation as a custom autograd function with a constant filter;
its gradient is :func:`fir_scatter` (the depthwise transposed convolution) and vice versa, so derivatives of any
order are exact and never reach the grouped-conv backward. ``fir_scatter`` with a stride is also the fast form of
the zero-insertion upsampling of ``upfirdn2d`` (no zeros materialised, 1/up^2 of the multiply-adds).
Results equal ``F.conv2d(x, k.repeat(C, 1, 1, 1), stride=s, groups=C)`` and
``F.conv_transpose2d(x, k.repeat(C, 1, 1, 1), stride=s, groups=C)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


_CPU_WEIGHTS: dict[tuple, torch.Tensor] = {}  # (channels, dtype, taps) -> [C, 1, kh, kw]; read-only, CPU only
_CPU_WEIGHTS_MAX = 256  # distinct (filter, width, dtype) triples; a network uses a handful


def _weight(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The filter ``k [kh, kw]`` repeated for every channel of ``x``: ``[C, 1, kh, kw]``.

    On CPU the result is kept per (channels, dtype, filter values): the taps are read on the host (no dispatched op;
    on CUDA that would be a sync, so CUDA builds it each time), which saves the two ops of building it, ~90 a
    training iteration of the small presets, where per-op overhead is most of the time. Nothing writes to it
    (it is only ever a convolution's weight inside these functions' forward, where autograd does not record)."""
    if k.device.type != "cpu":
        return k.to(x.dtype).expand(x.shape[1], 1, *k.shape).contiguous()  # expand adds the leading axes
    key = (x.shape[1], x.dtype, tuple(tuple(row) for row in k.tolist()))
    weight = _CPU_WEIGHTS.get(key)
    if weight is None:
        if len(_CPU_WEIGHTS) >= _CPU_WEIGHTS_MAX:
            _CPU_WEIGHTS.clear()
        weight = _CPU_WEIGHTS[key] = k.to(x.dtype).expand(x.shape[1], 1, *k.shape).contiguous()
    return weight


class _FirCorrelate(torch.autograd.Function):
    """y = depthwise correlation of x, zero-padded by ``padding``, with the constant filter k, at ``stride``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int]):
        ctx.save_for_backward(k)
        ctx.in_hw, ctx.stride, ctx.padding = (x.shape[2], x.shape[3]), stride, padding
        return F.conv2d(x, _weight(x, k), stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (k,) = ctx.saved_tensors
        grad_in = None
        if ctx.needs_input_grad[0]:  # the adjoint: the transposed filter, sized back to the input
            grad_in = fir_scatter(grad_out, k, ctx.stride, ctx.padding, out_hw=ctx.in_hw)
        return grad_in, None, None, None


class _FirScatter(torch.autograd.Function):
    """y = depthwise transposed convolution of x with the constant filter k (``F.conv_transpose2d`` semantics)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                out_pad: tuple[int, int]):
        ctx.save_for_backward(k)
        ctx.stride, ctx.padding = stride, padding
        return F.conv_transpose2d(x, _weight(x, k), stride=stride, padding=padding, output_padding=out_pad,
                                  groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (k,) = ctx.saved_tensors
        grad_in = fir_correlate(grad_out, k, ctx.stride, ctx.padding) if ctx.needs_input_grad[0] else None
        return grad_in, None, None, None, None


def fir_correlate(x: torch.Tensor, k: torch.Tensor, stride: int | tuple[int, int] = 1,
                  padding: int | tuple[int, int] = 0) -> torch.Tensor:
    """Depthwise correlation of ``x [B, C, H, W]``, zero-padded by ``padding = (py, px)`` on both sides, with the
    constant filter ``k [kh, kw]`` at ``stride = (sy, sx)`` (ints: both axes) (3DGP ref §9).

    Output ``[B, C, (H + 2 py - kh) // sy + 1, (W + 2 px - kw) // sx + 1]``. Gradients flow to ``x`` (any order; the
    adjoint is :func:`fir_scatter`); the filter is a constant (callers that need its gradient must use a plain
    grouped convolution).
    """
    assert x.ndim == 4 and k.ndim == 2, (x.shape, k.shape)
    return _FirCorrelate.apply(x, k, _pair(stride), _pair(padding))


def fir_scatter(x: torch.Tensor, k: torch.Tensor, stride: int | tuple[int, int] = 1,
                padding: int | tuple[int, int] = 0, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Depthwise transposed convolution of ``x [B, C, H, W]`` with the constant filter ``k [kh, kw]``: input pixel
    (i, j) adds ``x[i, j] * k`` at ``(i * sy - py, j * sx - px)`` of an output of size
    ``[(H - 1) * sy + kh - 2 py, (W - 1) * sx + kw - 2 px]``, or ``out_hw`` (up to ``stride - 1`` more at the
    end). Equal to zero-inserting ``x`` by the stride, padding by ``k - 1 - p`` and correlating with the flipped
    ``k`` (the upsampling FIR of ref §9) without materialising the zeros. Any order of gradients w.r.t. ``x``
    (the adjoint is :func:`fir_correlate`)."""
    assert x.ndim == 4 and k.ndim == 2, (x.shape, k.shape)
    stride, padding = _pair(stride), _pair(padding)
    out_pad = (0, 0)
    if out_hw is not None:
        out_pad = tuple(out_hw[i] - ((x.shape[2 + i] - 1) * stride[i] + k.shape[i] - 2 * padding[i])
                        for i in range(2))
        assert all(0 <= p < max(s, 1) or p == 0 for p, s in zip(out_pad, stride)), (out_pad, stride)
    return _FirScatter.apply(x, k, stride, padding, out_pad)
