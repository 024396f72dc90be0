"""The decoder MLP's fused CPU kernel against its addmm reference (issue 21 §1)."""
from __future__ import annotations

import pytest
import torch

from stages.nn.triplane import TriPlaneMLP
from stages.ops import _impl
from stages.ops import point_mlp as pm


def _tensors(num, feat, hidden, out, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = ((num, feat), (hidden, feat), (hidden,), (out, hidden), (out,))
    return [torch.randn(*s, generator=gen) * (0.5 if len(s) == 2 else 1.0) for s in shapes], \
        torch.randn(num, out, generator=gen)


def _run(impl, tensors, grad):
    inputs = [t.clone().requires_grad_(True) for t in tensors]
    y = pm.point_mlp(*inputs, impl=impl)
    y.backward(grad)
    return [y.detach()] + [t.grad for t in inputs]


@pytest.mark.parametrize("num,feat,hidden,out", [(3000, 16, 64, 4), (1000, 8, 32, 4), (2000, 32, 64, 4),
                                                 (700, 24, 48, 3), (5, 8, 8, 1)])
def test_kernel_equals_reference(num, feat, hidden, out, cpu_kernels):
    tensors, grad = _tensors(num, feat, hidden, out)
    torch.set_num_threads(2)
    _impl.reset_report()
    got = _run("auto", tensors, grad)
    assert _impl.impl_report()["point_mlp"] == "cpu"
    want = _run("ref", tensors, grad)
    names = ("y", "x", "w1", "b1", "w2", "b2")
    for name, a, b in zip(names, got, want):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, b.abs().max().item()), msg=name)


def test_thread_count_does_not_change_anything(cpu_kernels):
    """Weight gradients are summed per fixed chunk of points, so any thread count gives the same bits (a run's
    result must not depend on --threads auto's choices)."""
    tensors, grad = _tensors(3 * 4096 + 100, 16, 64, 4)
    torch.set_num_threads(1)
    one = _run("auto", tensors, grad)
    torch.set_num_threads(2)
    two = _run("auto", tensors, grad)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_second_order_gradients_follow_the_reference():
    tensors, grad = _tensors(300, 8, 16, 4)
    results = []
    for impl in ("auto", "ref"):
        inputs = [t.clone().requires_grad_(True) for t in tensors]
        y = pm.point_mlp(*inputs, impl=impl)
        (gx,) = torch.autograd.grad((y * grad).sum(), inputs[0], create_graph=True)
        gx.square().sum().backward()
        results.append([t.grad for t in inputs[1:]])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_triplane_mlp_takes_the_kernel_with_the_same_values(cpu_kernels):
    """TriPlaneMLP on CPU runs the fused op; outputs and every parameter gradient equal the layer-by-layer path."""
    torch.manual_seed(0)
    mlp = TriPlaneMLP(16, 64, 2, 4)
    feats = torch.randn(2, 500, 16, requires_grad=True)
    grad = torch.randn(2, 500, 4)
    runs = []
    for fused in (True, False):
        mlp.zero_grad()
        feats.grad = None
        _impl.reset_report()
        if fused:
            out = mlp(feats)
            assert _impl.impl_report().get("point_mlp") == "cpu"
        else:
            x = feats.reshape(-1, 16)
            for layer in mlp.layers:
                x = layer(x)
            out = x.reshape(2, 500, 4)
        out.backward(grad)
        runs.append([out.detach(), feats.grad.clone()] + [p.grad.clone() for p in mlp.parameters()])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_other_shapes_take_the_reference():
    _impl.reset_report()
    tensors, _ = _tensors(10, 12, 64, 4)  # F not a multiple of 8
    pm.point_mlp(*tensors)
    tensors, _ = _tensors(10, 16, 64, 9)  # more than 8 outputs
    pm.point_mlp(*tensors)
    assert _impl.impl_report()["point_mlp"] == "ref"
    three_layers = TriPlaneMLP(16, 64, 3, 4)
    _impl.reset_report()
    three_layers(torch.randn(1, 10, 16))
    assert "point_mlp" not in _impl.impl_report()
