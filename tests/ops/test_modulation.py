"""The synthesis layer's fused modulate / epilogue CPU kernels against autograd's ops (issue 21 §1)."""
from __future__ import annotations

import pytest
import torch

from stages.ops import _impl
from stages.ops import modulation as mod


def _cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def _grads(fn, tensors, grad):
    inputs = [t.clone().requires_grad_(True) if t is not None else None for t in tensors]
    if inputs[0].ndim == 4 and tensors[0].is_contiguous(memory_format=torch.channels_last):
        inputs[0] = _cl(inputs[0].detach()).requires_grad_(True)
    y = fn(*inputs)
    y.backward(grad)
    return [y.detach()] + [t.grad for t in inputs if t is not None]


@pytest.mark.parametrize("channels,res", [(8, 5), (32, 9), (128, 4)])
def test_modulate_equals_reference(channels, res, cpu_kernels):
    gen = torch.Generator().manual_seed(0)
    x, s = _cl(torch.randn(3, channels, res, res, generator=gen)), torch.randn(3, channels, generator=gen)
    grad = torch.randn(3, channels, res, res, generator=gen)
    torch.set_num_threads(2)
    _impl.reset_report()
    got = _grads(mod.modulate, [x, s], grad)
    assert _impl.impl_report()["modulate"] == "cpu"
    want = _grads(mod.modulate_ref, [x, s], grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("noise_kind", ["none", "per_image", "shared"])
@pytest.mark.parametrize("channels,res,batch", [(16, 7, 3), (64, 16, 2)])
def test_epilogue_equals_reference(noise_kind, channels, res, batch, cpu_kernels):
    gen = torch.Generator().manual_seed(1)
    c = _cl(torch.randn(batch, channels, res, res, generator=gen))
    d, bias = torch.rand(batch, channels, generator=gen) + 0.5, torch.randn(channels, generator=gen)
    noise = {"none": None, "per_image": torch.randn(batch, 1, res, res, generator=gen),
             "shared": torch.randn(res, res, generator=gen)}[noise_kind]
    grad = torch.randn(batch, channels, res, res, generator=gen)
    torch.set_num_threads(2)
    _impl.reset_report()
    got = _grads(mod.epilogue, [c, d, bias, noise], grad)
    assert _impl.impl_report()["epilogue"] == "cpu"
    want = _grads(mod.epilogue_ref, [c, d, bias, noise], grad)
    assert len(got) == len(want) == (4 if noise is None else 5)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (got[0] < 0).any() and (got[0] > 0).any()  # both branches of the lrelu


def test_thread_count_does_not_change_anything(cpu_kernels):
    gen = torch.Generator().manual_seed(2)
    c = _cl(torch.randn(3, 16, 50, 50, generator=gen))  # 7,500 pixels: two chunks, one straddling two images
    d, bias = torch.rand(3, 16, generator=gen) + 0.5, torch.randn(16, generator=gen)
    noise, grad = torch.randn(3, 1, 50, 50, generator=gen), torch.randn(3, 16, 50, 50, generator=gen)
    s = torch.randn(3, 16, generator=gen)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs.append(_grads(mod.epilogue, [c, d, bias, noise], grad) + _grads(mod.modulate, [c, s], grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_other_layouts_and_second_order_take_autograd():
    x, s = torch.randn(2, 8, 4, 4), torch.randn(2, 8)  # NCHW, not channels-last
    _impl.reset_report()
    mod.modulate(x, s)
    assert _impl.impl_report()["modulate"] == "ref"
    xs = [_cl(torch.randn(2, 8, 5, 5)).requires_grad_(True), torch.randn(2, 8, requires_grad=True)]
    results = []
    for fn in (mod.modulate, mod.modulate_ref):
        x_, s_ = [t.detach().clone().requires_grad_(True) for t in xs]
        x_ = _cl(x_.detach()).requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(x_, s_).square().sum(), x_, create_graph=True)
        gx.sum().backward()
        results.append(s_.grad)
    torch.testing.assert_close(*results)


def test_synthesis_layer_values_unchanged():
    """A synthesis layer on CPU (channels-last, training path) gives the same output and gradients with the
    kernels as with autograd's ops."""
    from stages.nn.synthesis import SynthesisLayer

    torch.manual_seed(0)
    layer = SynthesisLayer(16, 16, w_dim=32, resolution=8).train()
    with torch.no_grad():
        layer.noise_strength.fill_(0.3)
    x = _cl(torch.randn(2, 16, 8, 8))
    w = torch.randn(2, 32)
    runs = []
    for use_kernels in (True, False):
        layer.zero_grad()
        gen = torch.Generator().manual_seed(5)
        if not use_kernels:
            originals = (mod.modulate, mod.epilogue)
            import stages.nn.synthesis as syn

            syn.modulate, syn.epilogue = mod.modulate_ref, mod.epilogue_ref
        try:
            y = layer(x, w, fused_modconv=False, generator=gen)
            y.square().sum().backward()
        finally:
            if not use_kernels:
                syn.modulate, syn.epilogue = originals
        runs.append([y.detach()] + [p.grad.clone() for p in layer.parameters()])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
