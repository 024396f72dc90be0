"""Fused bias + activation + gain + clamp (3DGP ref §1.1, §9).

Every fully connected and convolution layer of G and D ends in this op. The reference path below is the spec;
the CUDA path (``csrc/bias_act.cu``) computes the same thing in one kernel launch, forward and backward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from stages.ops import _impl


@dataclass(frozen=True)
class Activation:
    """One activation: its function of (x, alpha), default alpha and gain, and the id the CUDA kernel uses."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float  # slope / scale parameter (only lrelu uses it)
    def_gain: float  # output gain applied after the activation (ref §1.1: relu, lrelu and swish sqrt(2))
    cuda_id: int  # matches the ActId enum in csrc/bias_act.h


# The activations (ref §1.1): relu/lrelu/swish have gain sqrt(2) to keep the signal's second moment (the
# StyleGAN2 table, = stages.nn.layers.ACTIVATION_GAIN), the others 1. The CUDA kernel has no gain table: the
# resolved gain is always passed to it, so these defaults cover both paths.
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, 0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 1),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 2),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, 3),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 4),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0, 5),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, 6),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0, 7),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 8),
}

# The CUDA kernel accumulates in float (double for float64) and covers these dtypes.
CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def resolve_params(act: str, alpha: float | None, gain: float | None, clamp: float | None):
    """Check ``act`` and fill in the activation's default alpha and gain; ``clamp`` < 0 or None means no clamp."""
    if act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    return spec, alpha, gain, clamp


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Add a bias, apply an activation, scale by a gain and clamp: ``clamp(act(x + b) * gain, -clamp, clamp)``.

    (3DGP ref §1.1 equalized-lr layers, §9 op table.)

    Args:
        x: input tensor of any shape.
        b: bias, 1-D with ``x.shape[dim]`` entries, broadcast along ``dim``; None adds nothing.
        dim: the axis of ``x`` the bias runs along (1 for [B, C, ...] feature maps and [B, C] FC outputs).
        act: one of linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish.
        alpha: lrelu's negative slope (default 0.2); ignored by the other activations.
        gain: output scale; default sqrt(2) for relu/lrelu/swish, 1 for the others.
        clamp: clamp the output to [-clamp, clamp]; None (or a negative value) disables clamping.
        impl: "auto", "ref" or "cuda" (see ``stages.ops._impl``); CPU tensors always use "ref".

    Returns:
        A tensor of the same shape and dtype as ``x``.
    """
    assert isinstance(x, torch.Tensor)
    spec, alpha, gain, clamp = resolve_params(act, alpha, gain, clamp)
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim], (tuple(b.shape), tuple(x.shape), dim)
    covered = x.dtype in CUDA_DTYPES and (b is None or b.dtype == x.dtype)
    why = None if covered else f"x {x.dtype} with bias {None if b is None else b.dtype}"
    ext = _impl.choose("bias_act", impl, x, cuda_ok=covered and x.numel() > 0, why=why)
    if ext is not None:
        from stages.ops._bias_act_cuda import bias_act_cuda

        return bias_act_cuda(ext, x, b, dim=dim % x.ndim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """The reference implementation of :func:`bias_act`, in plain differentiable PyTorch (3DGP ref §9)."""
    spec, alpha, gain, clamp = resolve_params(act, alpha, gain, clamp)
    if b is not None:
        shape = [-1 if i == dim % x.ndim else 1 for i in range(x.ndim)]
        x = x + b.reshape(shape)  # broadcast the bias along `dim`
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
