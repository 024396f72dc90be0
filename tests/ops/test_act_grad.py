"""D's bias + lrelu + clamp with a one-op derivative, against autograd's own ops (issue 21 §1)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.ops import _cpu_build, _impl
from stages.ops.act_grad import bias_lrelu_clamp
from stages.ops.conv2d_gradfix import no_weight_gradients


def _autograd_ops(x, b, clamp):
    y = F.leaky_relu(x + b.reshape(1, -1, 1, 1), 0.2)
    return y.clamp(-clamp, clamp) if clamp is not None else y


@pytest.fixture(params=["kernel", "torch"])
def path(request, monkeypatch):
    if request.param == "kernel":
        request.getfixturevalue("cpu_kernels")
    if request.param == "torch":
        monkeypatch.setenv(_cpu_build.ENABLE_ENV, "0")
    return request.param


@pytest.mark.parametrize("clamp,channels_last", [(None, False), (1.5, True), (1.5, False)])
def test_values_and_gradients_equal_autograd(path, clamp, channels_last):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, 7, generator=gen) * 2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(5, generator=gen)
    grad = torch.randn(3, 5, 6, 7, generator=gen)
    runs = []
    for fn in (bias_lrelu_clamp, _autograd_ops):
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        _impl.reset_report()
        y = fn(xi, bi, 0.2, clamp) if fn is bias_lrelu_clamp else fn(xi, bi, clamp)
        y.backward(grad)
        runs.append((y.detach(), xi.grad, bi.grad))
        if fn is bias_lrelu_clamp:
            assert _impl.impl_report()["act_grad"] == ("cpu" if path == "kernel" else "ref")
    for got, want in zip(*runs):
        torch.testing.assert_close(got, want)
    if clamp is not None:
        assert (runs[0][0].abs() == clamp).any()  # the clamp was exercised


def test_r1_double_backward_equals_autograd(path):
    """||d D(x) / d x||^2 differentiated w.r.t. the weights, through conv + act layers and a nonlinear head (like
    mbstd, it sends a second-order gradient down the forward path)."""
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(6, 3, 3, 3, generator=gen) * 0.3, torch.randn(6, 6, 3, 3, generator=gen) * 0.3]
    biases = [torch.randn(6, generator=gen) * 0.1 for _ in weights]
    image = torch.randn(2, 3, 8, 8, generator=gen)
    runs = []
    for fused in (True, False):
        params = [t.clone().requires_grad_(True) for t in weights + biases]
        x = image.clone().requires_grad_(True)
        h = x
        for w, b in zip(params[:2], params[2:]):
            h = F.conv2d(h, w, padding=1)
            h = bias_lrelu_clamp(h, b, 0.2, 2.0) if fused else _autograd_ops(h, b, 2.0)
        logits = (h.square().mean([1, 2, 3]) + 1).sqrt()  # nonlinear head
        with no_weight_gradients():
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        g.square().sum().backward()
        runs.append([p.grad for p in params])
    for got, want in zip(*runs):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_bias_gradient_skipped_inside_no_weight_gradients():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    with no_weight_gradients():
        (gx,) = torch.autograd.grad(bias_lrelu_clamp(x, b).sum(), x)
    assert gx.shape == x.shape and b.grad is None
    bias_lrelu_clamp(x, b).sum().backward()
    assert b.grad is not None and b.grad.abs().sum() > 0
