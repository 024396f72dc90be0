"""Autograd wrapper of the bias_act CUDA kernels (3DGP ref §1.1, §9).

First-order gradients run the CUDA backward kernel. When autograd records the backward pass itself
(``create_graph=True``, as in R1's double backward) the gradient is recomputed through the reference path, so
second-order gradients are exact on every path.
"""
from __future__ import annotations

import torch

from stages.ops.bias_act import ACTIVATIONS, bias_act_ref


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, ext, dim, act, alpha, gain, clamp):  # noqa: D401 - autograd hook
        b_arg = b.contiguous() if b is not None else x.new_empty([0])
        y = ext.bias_act_forward(x.contiguous(), b_arg, dim, ACTIVATIONS[act].cuda_id, alpha, gain, clamp)
        ctx.save_for_backward(x, b)  # the inputs themselves, so a create_graph backward links to their graph
        ctx.params = (ext, dim, act, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        ext, dim, act, alpha, gain, clamp = ctx.params
        if torch.is_grad_enabled():  # create_graph: differentiate the reference path instead
            return _ref_grads(x, b, dy, dim, act, alpha, gain, clamp) + (None,) * 6
        b_arg = b.contiguous() if b is not None else x.new_empty([0])
        act_id = ACTIVATIONS[act].cuda_id
        dx = ext.bias_act_backward(dy.contiguous(), x.contiguous(), b_arg, dim, act_id, alpha, gain, clamp)
        db = None
        if b is not None and ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != dim])  # [C]
        return (dx if ctx.needs_input_grad[0] else None), db, None, None, None, None, None, None


def _ref_grads(x, b, dy, dim, act, alpha, gain, clamp):
    """(dx, db) through the reference implementation, keeping the graph for higher-order gradients."""
    with torch.enable_grad():
        xr = x if x.requires_grad else x.detach().requires_grad_(True)
        inputs = [xr] + ([b if b.requires_grad else b.detach().requires_grad_(True)] if b is not None else [])
        y = bias_act_ref(inputs[0], inputs[1] if b is not None else None, dim=dim, act=act, alpha=alpha,
                         gain=gain, clamp=clamp)
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True, allow_unused=True)
    return grads[0], (grads[1] if b is not None else None)


def bias_act_cuda(ext, x, b, dim, act, alpha, gain, clamp):
    """Run :func:`stages.ops.bias_act.bias_act` on the CUDA kernels (``dim`` already non-negative)."""
    return _BiasActCuda.apply(x, b, ext, dim, act, alpha, gain, clamp)
