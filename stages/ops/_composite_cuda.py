"""Autograd wrapper of the volume compositing CUDA kernels (3DGP ref §1.6 step 7).

Forward and first-order backward run on the kernels (one thread per ray, a reverse sweep over samples). When the
backward pass is itself recorded (``create_graph=True``) the gradients are recomputed through the reference path,
so higher-order gradients stay exact.
"""
from __future__ import annotations

import torch

from stages.ops.volume_composite import composite_ref


class _CompositeCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rgb, sigma_raw, t, ext):  # noqa: D401 - autograd hook
        rgb_out, depth, weights, trans = ext.composite_forward(rgb.contiguous(), sigma_raw.contiguous(),
                                                               t.contiguous())
        # The inputs themselves (a create_graph backward must link to their graph), plus kernel state.
        ctx.save_for_backward(rgb, sigma_raw, t, weights, trans)
        ctx.ext = ext
        return rgb_out, depth, weights

    @staticmethod
    def backward(ctx, g_rgb, g_depth, g_weights):
        rgb, sigma_raw, t, weights, trans = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the reference path instead
            return _ref_grads(rgb, sigma_raw, t, g_rgb, g_depth, g_weights) + (None,)
        g_rgb = torch.zeros_like(rgb[:, 0]) if g_rgb is None else g_rgb.contiguous()
        g_depth = torch.zeros_like(t[:, :1]) if g_depth is None else g_depth.contiguous()
        g_weights = torch.zeros_like(t) if g_weights is None else g_weights.contiguous()
        d_rgb, d_sigma, d_t = ctx.ext.composite_backward(rgb.contiguous(), sigma_raw.contiguous(), t.contiguous(),
                                                         weights, trans, g_rgb, g_depth, g_weights)
        return d_rgb, d_sigma, d_t, None


def _ref_grads(rgb, sigma_raw, t, g_rgb, g_depth, g_weights):
    """Input gradients through :func:`composite_ref`, keeping the graph for higher-order gradients."""
    with torch.enable_grad():
        inputs = [v if v.requires_grad else v.detach().requires_grad_(True) for v in (rgb, sigma_raw, t)]
        outputs = composite_ref(*inputs)
        pairs = [(o, g) for o, g in zip(outputs, (g_rgb, g_depth, g_weights)) if g is not None]
        grads = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], create_graph=True,
                                    allow_unused=True)
    return tuple(torch.zeros_like(v) if g is None else g for v, g in zip(inputs, grads))


def composite_cuda(ext, rgb, sigma_raw, t):
    """Run :func:`stages.ops.volume_composite.composite` on the CUDA kernels."""
    return _CompositeCuda.apply(rgb, sigma_raw, t, ext)
