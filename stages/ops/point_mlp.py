"""The tri-plane decoder's two-layer MLP over points, fused on CPU (3DGP ref §1.3; issue 21 §1).

``point_mlp(x [M, F], w1 [H, F], b1 [H], w2 [O, H], b2 [O]) = lrelu(x w1^T + b1, 0.2) w2^T + b2`` -> ``[M, O]``,
with the equalized-lr and activation gains already in the weights (``FullyConnectedLayer.effective_params``). For
the SMALL configuration M = 131,072 points per pass, F = 16, H = 64, O = 4: as two matmuls this writes and reads
[M, 64] activations several times and runs the K = 4 matmul of the backward, which MKL does badly. The CPU kernel
(``csrc/cpu_kernels.c``) keeps each point's hidden layer in registers and recomputes it in the backward; weight
gradients are summed in blocks of 64 points, per chunk of 4096 points, then over chunks -- the same sums whatever
the thread count. Same values as the reference up to float
rounding (tests). It covers float32 CPU tensors with F, H multiples of 8 up to 128 and O <= 8 and first-order
gradients; everything else, a ``create_graph`` backward included, runs the reference.
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from stages.ops import _impl

IMPLS = ("auto", "ref")
MAX_WIDTH = 128
MAX_OUT = 8
GRAIN = 512  # points per thread below which extra threads are not worth waking
CHUNK = 4096  # points per work item of the backward kernel (MLP_CHUNK in csrc/cpu_kernels.c)


def point_mlp_ref(x, w1, b1, w2, b2) -> torch.Tensor:
    """The reference: ``addmm`` + leaky ReLU + ``addmm``."""
    hidden = F.leaky_relu(torch.addmm(b1.unsqueeze(0), x, w1.t()), 0.2)
    return torch.addmm(b2.unsqueeze(0), hidden, w2.t())


def kernel_applies(x: torch.Tensor, hidden: int, out: int) -> bool:
    """Whether the CPU kernel covers these shapes and this tensor (module docstring)."""
    feat = x.shape[-1]
    return (x.device.type == "cpu" and x.dtype == torch.float32 and feat % 8 == 0 and 0 < feat <= MAX_WIDTH
            and hidden % 8 == 0 and 0 < hidden <= MAX_WIDTH and 0 < out <= MAX_OUT and x.shape[0] > 0
            and not torch.is_autocast_enabled("cpu"))


def point_mlp(x, w1, b1, w2, b2, impl: str = "auto") -> torch.Tensor:
    """``lrelu(x w1^T + b1, 0.2) w2^T + b2`` for ``x [M, F]``: ``[M, O]`` (module docstring)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: must be one of {', '.join(IMPLS)}, got {impl!r}")
    lib = None
    if impl == "auto" and kernel_applies(x, w1.shape[0], w2.shape[0]) and all(
            t.dtype == torch.float32 and t.device.type == "cpu" for t in (w1, b1, w2, b2)):
        from stages.ops._cpu_build import get_library

        lib = get_library()
    _impl.record("point_mlp", "cpu" if lib is not None else "ref")
    if lib is None:
        return point_mlp_ref(x, w1, b1, w2, b2)
    return _PointMLP.apply(x, w1, b1, w2, b2, lib)


def _team(points: int):
    from stages.ops._cpu_build import team

    return team(points // GRAIN)


class _PointMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, lib):
        x, w1t, b1c, w2c, b2c = x.contiguous(), w1.t().contiguous(), b1.contiguous(), w2.contiguous(), b2.contiguous()
        num, feat = x.shape
        hidden, out = w1.shape[0], w2.shape[0]
        y = x.new_empty(num, out)
        lib.threedgp_mlp_forward(x.data_ptr(), w1t.data_ptr(), b1c.data_ptr(), w2c.data_ptr(), b2c.data_ptr(),
                                 y.data_ptr(), num, feat, hidden, out, ctypes.byref(_team(num)))
        ctx.save_for_backward(x, w1, b1, w2, b2)
        ctx.lib = lib
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, w1, b1, w2, b2 = ctx.saved_tensors
        needs = ctx.needs_input_grad[:5]
        if torch.is_grad_enabled():  # create_graph: differentiate the reference so the graph continues
            return _impl.reference_grads(point_mlp_ref, (x, w1, b1, w2, b2), needs, grad_y) + (None,)
        num, feat = x.shape
        hidden, out = w1.shape[0], w2.shape[0]
        w1t, w1c, b1c, w2c = w1.t().contiguous(), w1.contiguous(), b1.contiguous(), w2.contiguous()
        grad_y = grad_y.contiguous()
        grad_x = x.new_empty(num, feat) if needs[0] else None
        team = _team(num)
        size = feat * hidden + hidden + out * hidden + out
        partial = x.new_zeros(-(-num // CHUNK), size)  # one row per work item: the same sums for any thread count
        ctx.lib.threedgp_mlp_backward(x.data_ptr(), w1t.data_ptr(), w1c.data_ptr(), b1c.data_ptr(),
                                      w2c.data_ptr(), grad_y.data_ptr(),
                                      grad_x.data_ptr() if grad_x is not None else None, partial.data_ptr(),
                                      num, feat, hidden, out, ctypes.byref(team))
        total = partial.sum(0)
        gw1t, gb1, gw2, gb2 = total.split([feat * hidden, hidden, out * hidden, out])
        return (grad_x, gw1t.view(feat, hidden).t() if needs[1] else None, gb1 if needs[2] else None,
                gw2.view(out, hidden) if needs[3] else None, gb2 if needs[4] else None, None)


def selfcheck(lib) -> str | None:
    """Compare the kernel with the reference on a small input (output and every gradient); the first mismatch in
    one line, or None. Runs whatever the caller's grad mode."""
    with torch.inference_mode(False), torch.enable_grad():
        gen = torch.Generator().manual_seed(0)
        shapes = ((700, 8), (16, 8), (16,), (3, 16), (3,))
        tensors = [torch.randn(*s, generator=gen) for s in shapes]
        grad = torch.randn(700, 3, generator=gen)
        results = []
        for run in (lambda *t: _PointMLP.apply(*t, lib), point_mlp_ref):
            inputs = [t.clone().requires_grad_(True) for t in tensors]
            y = run(*inputs)
            y.backward(grad)
            results.append([y.detach()] + [t.grad for t in inputs])
        names = ("output", "x gradient", "w1 gradient", "b1 gradient", "w2 gradient", "b2 gradient")
        for name, got, want in zip(names, *results):
            if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                return f"point_mlp {name} differs from the reference by {(got - want).abs().max().item():.3g}"
    return None
