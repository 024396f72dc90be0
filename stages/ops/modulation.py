"""The synthesis layer's training-path elementwise work, fused on CPU (3DGP ref §1.2; issue 21 §1).

The non-fused modulated convolution of a synthesis layer is ``x * s`` (modulate), a shared-weight convolution,
then ``lrelu(c * d + bias + noise)`` (epilogue: demodulation, bias and noise with the activation gain folded in).
With autograd's own ops the backward makes about nine passes over each activation map (leaky_relu_backward, the
noise's channel sum, addcmul's two products and reductions, the bias sum, the modulation's product and its
reduction); the CPU kernels (``csrc/cpu_kernels.c``) make one pass for each of the two: :func:`modulate`'s backward
writes ``g * s`` and sums ``g * x`` per image and channel; :func:`epilogue`'s writes the conv output's gradient and
sums the demodulation, bias and noise gradients. Channels-last float32 CPU tensors with a multiple of 8 channels
(up to 128) take them -- the layout the synthesis network runs in on CPU; anything else, and a ``create_graph``
backward, runs the same ops through autograd. Same values up to float rounding (tests).
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from stages.ops import _impl

GRAIN = 1 << 14  # pixels per thread below which extra threads are not worth waking
CHUNK_PIXELS = 64 * 64  # = PIX_CHUNK * PIX_BLOCK of csrc/cpu_kernels.c


def modulate_ref(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return x * s.reshape(*s.shape, 1, 1)


def epilogue_ref(c, d, bias, noise) -> torch.Tensor:
    batch_size, channels = d.shape
    y = torch.addcmul(bias.reshape(1, -1, 1, 1), c, d.reshape(batch_size, channels, 1, 1))
    if noise is not None:
        y = y.add_(noise)
    return F.leaky_relu_(y, 0.2)


def _library(x: torch.Tensor):
    channels = x.shape[1] if x.ndim == 4 else 0
    if not (x.ndim == 4 and x.device.type == "cpu" and x.dtype == torch.float32 and channels % 8 == 0
            and 0 < channels <= 128 and x.is_contiguous(memory_format=torch.channels_last) and x.numel() > 0
            and not torch.is_autocast_enabled("cpu")):
        return None
    from stages.ops._cpu_build import get_library

    return get_library()


def _team(pixels: int):
    from stages.ops._cpu_build import team

    return team(pixels // GRAIN)


def _chunks(pixels: int) -> int:
    """Work items of the backward kernels (4096 pixels each, ``PIX_CHUNK`` x ``PIX_BLOCK`` in the C source), each
    with its own row of partial sums: the result does not depend on the thread count."""
    return -(-pixels // CHUNK_PIXELS)


def _like(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``g`` in ``y``'s (channels-last) layout."""
    return g if g.stride() == y.stride() else torch.empty_like(y).copy_(g)


def modulate(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x [B, C, H, W] * s [B, C]`` per image and channel (module docstring)."""
    lib = _library(x) if s.dtype == torch.float32 else None
    _impl.record("modulate", "cpu" if lib is not None else "ref")
    return modulate_ref(x, s) if lib is None else _Modulate.apply(x, s, lib)


def epilogue(c: torch.Tensor, d: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """``lrelu(c * d[:, :, None, None] + bias[None, :, None, None] + noise, 0.2)`` for the conv output ``c [B, O, H,
    W]``, ``d [B, O]``, ``bias [O]``, ``noise`` [B, 1, H, W], [H, W] or None (module docstring)."""
    lib = None
    if noise is None or noise.dtype == torch.float32 and noise.shape in ((c.shape[0], 1, *c.shape[2:]), c.shape[2:]):
        lib = _library(c) if d.dtype == bias.dtype == torch.float32 else None
    _impl.record("epilogue", "cpu" if lib is not None else "ref")
    return epilogue_ref(c, d, bias, noise) if lib is None else _Epilogue.apply(c, d, bias, noise, lib)


class _Modulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, s, lib):
        ctx.save_for_backward(x, s)
        ctx.lib = lib
        return modulate_ref(x, s)

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        want_x, want_s = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph: through autograd's ops so the graph continues
            return _impl.reference_grads(modulate_ref, (x, s), (want_x, want_s), g) + (None,)
        batch_size, channels, height, width = x.shape
        g = _like(g, x)
        gx = torch.empty_like(x)
        team = _team(batch_size * height * width)
        part = x.new_zeros(_chunks(batch_size * height * width), batch_size, channels)
        s_c = s.contiguous()
        ctx.lib.threedgp_modulate_backward(g.data_ptr(), x.data_ptr(), s_c.data_ptr(), gx.data_ptr(),
                                           part.data_ptr(), batch_size, height * width, channels, ctypes.byref(team))
        return (gx if want_x else None), (part.sum(0) if want_s else None), None


class _Epilogue(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, d, bias, noise, lib):
        batch_size, channels, height, width = c.shape
        d_c, bias_c = d.contiguous(), bias.contiguous()
        mode = 0 if noise is None else (1 if noise.ndim == 4 else 2)
        noise_c = noise.contiguous() if noise is not None else None
        y = torch.empty_like(c)
        lib.threedgp_epilogue_forward(c.data_ptr(), d_c.data_ptr(), bias_c.data_ptr(),
                                      noise_c.data_ptr() if noise is not None else None, mode, y.data_ptr(),
                                      batch_size, height * width, channels,
                                      ctypes.byref(_team(batch_size * height * width)))
        ctx.save_for_backward(c, d, bias, noise, y)
        ctx.lib = lib
        return y

    @staticmethod
    def backward(ctx, gy):
        c, d, bias, noise, y = ctx.saved_tensors
        needs = ctx.needs_input_grad[:4]
        if torch.is_grad_enabled():  # create_graph: through autograd's ops so the graph continues
            return _impl.reference_grads(epilogue_ref, (c, d, bias, noise), needs, gy) + (None,)
        batch_size, channels, height, width = c.shape
        gy = _like(gy, y)
        gc = torch.empty_like(c)
        gn = c.new_empty(batch_size, height, width) if noise is not None and needs[3] else None
        team = _team(batch_size * height * width)
        chunks = _chunks(batch_size * height * width)
        gd = c.new_zeros(chunks, batch_size, channels)
        gbias = c.new_zeros(chunks, channels)
        ctx.lib.threedgp_epilogue_backward(gy.data_ptr(), y.data_ptr(), c.data_ptr(), d.contiguous().data_ptr(),
                                           gc.data_ptr(), gn.data_ptr() if gn is not None else None,
                                           gd.data_ptr(), gbias.data_ptr(), batch_size, height * width, channels,
                                           ctypes.byref(team))
        g_noise = None
        if gn is not None:
            g_noise = gn.unsqueeze(1) if noise.ndim == 4 else gn.sum(0)
        return (gc if needs[0] else None, gd.sum(0) if needs[1] else None, gbias.sum(0) if needs[2] else None,
                g_noise, None)
