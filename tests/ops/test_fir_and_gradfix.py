"""Depthwise FIR functions (ops._fir), conv2d_gradfix and no_weight_gradients (3DGP ref §9, §5.1)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from stages.ops import conv2d_gradfix, setup_filter, upfirdn2d
from stages.ops._fir import fir_correlate, fir_scatter


def _k(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("stride,padding,taps", [(1, 0, (4, 4)), (2, 1, (4, 4)), ((1, 2), (0, 1), (1, 4)),
                                                 ((3, 1), (2, 0), (3, 1)), (2, 0, (3, 2))])
def test_fir_ops_equal_grouped_convolutions(stride, padding, taps):
    x = _k((2, 3, 9, 8), 1)
    k = _k(taps, 2)
    weight = k[None, None].repeat(3, 1, 1, 1)
    want = F.conv2d(x, weight, stride=stride, padding=padding, groups=3)
    torch.testing.assert_close(fir_correlate(x, k, stride, padding), want, rtol=0, atol=1e-12)
    want_t = F.conv_transpose2d(x, weight, stride=stride, padding=padding, groups=3)
    torch.testing.assert_close(fir_scatter(x, k, stride, padding), want_t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((2, 1), (1, 0))])
def test_fir_ops_gradcheck_and_gradgradcheck(stride, padding):
    k = _k((3, 4), 3)
    x = _k((1, 2, 7, 9), 4).requires_grad_(True)
    assert gradcheck(lambda t: fir_correlate(t, k, stride, padding), (x,))
    assert gradgradcheck(lambda t: fir_correlate(t, k, stride, padding).square(), (x,))
    assert gradcheck(lambda t: fir_scatter(t, k, stride, padding), (x,))
    assert gradgradcheck(lambda t: fir_scatter(t, k, stride, padding).square(), (x,))


def test_strided_correlation_gradient_covers_unreached_input_rows():
    """(H - kh) not divisible by the stride: the last input rows get zero gradient, and the shape still fits."""
    x = _k((1, 1, 8, 8), 5).requires_grad_(True)
    k = _k((4, 4), 6)
    (g,) = torch.autograd.grad(fir_correlate(x, k, 3).sum(), x)
    (want,) = torch.autograd.grad(F.conv2d(x, k[None, None], stride=3).sum(), x)
    torch.testing.assert_close(g, want)


def test_upfirdn2d_learnable_filter_still_gets_a_gradient_and_the_same_values():
    x = _k((1, 2, 6, 6), 7)
    f = setup_filter([1, 3, 3, 1]).double()
    const = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])
    f_learn = f.clone().requires_grad_(True)
    learnt = upfirdn2d(x, f_learn, up=2, padding=[2, 1, 2, 1])
    torch.testing.assert_close(learnt, const)
    (gf,) = torch.autograd.grad(learnt.square().sum(), f_learn)
    assert gf.shape == f.shape and gf.abs().sum() > 0


@pytest.mark.parametrize("stride,padding,groups", [(1, 1, 1), (2, 0, 1), (1, (1, 0), 2), (2, 1, 2)])
def test_gradfix_conv_values_and_derivatives(stride, padding, groups):
    x = _k((2, 4, 7, 6), 8).requires_grad_(True)
    w = _k((6, 4 // groups, 3, 3), 9).requires_grad_(True)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, stride, padding, groups),
                               F.conv2d(x, w, stride=stride, padding=padding, groups=groups))
    fn = lambda a, b: conv2d_gradfix.conv2d(a, b, stride, padding, groups)  # noqa: E731
    assert gradcheck(fn, (x, w))
    assert gradgradcheck(fn, (x, w))


def _r1_like(conv, x, w1, w2, no_weight_grads: bool):
    """A 2-conv 'discriminator' and its R1-style penalty gradient w.r.t. the weights."""
    x = x.detach().requires_grad_(True)
    y = conv(F.leaky_relu(conv(x, w1, 1, 1, 1), 0.2), w2, 2, 1, 1)  # [B, 3, 4, 4]
    logits = (y.square().mean(dim=[1, 2, 3]) + y.sum(dim=[1, 2, 3]))  # nonlinear in y (like mbstd)
    with conv2d_gradfix.no_weight_gradients(no_weight_grads):
        (gx,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    penalty = gx.square().sum()
    return torch.autograd.grad(penalty, [w1, w2])


def test_no_weight_gradients_gives_the_same_r1_weight_gradients_as_plain_conv2d():
    x = _k((2, 2, 8, 8), 10)
    w1 = _k((3, 2, 3, 3), 11).requires_grad_(True)
    w2 = _k((3, 3, 3, 3), 12).requires_grad_(True)
    native = _r1_like(lambda a, b, s, p, g: F.conv2d(a, b, stride=s, padding=p, groups=g), x, w1, w2, False)
    with_flag = _r1_like(conv2d_gradfix.conv2d, x, w1, w2, True)
    without_flag = _r1_like(conv2d_gradfix.conv2d, x, w1, w2, False)
    for a, b, c in zip(native, with_flag, without_flag):
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(c, a)


def test_no_weight_gradients_really_skips_them_and_restores_the_state():
    x = _k((1, 2, 5, 5), 13).requires_grad_(True)
    w = _k((2, 2, 3, 3), 14).requires_grad_(True)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled()
        conv2d_gradfix.conv2d(x, w).sum().backward()
    assert not conv2d_gradfix.weight_gradients_disabled()
    assert w.grad is None and x.grad is not None


def test_cpu_filter_weights_are_kept_per_values_width_and_dtype():
    """The per-channel filter is built once per (channels, dtype, taps) on CPU and reused; other taps, widths or
    dtypes get their own, and results stay those of the grouped convolution."""
    from stages.ops import _fir

    _fir._CPU_WEIGHTS.clear()
    x = torch.randn(2, 3, 9, 9)
    k = torch.tensor([[1.0, 3.0, 3.0, 1.0]]) / 8
    first = _fir._weight(x, k)
    assert _fir._weight(x, k.clone()) is first  # same values: the kept tensor
    assert _fir._weight(x, k * 2) is not first and _fir._weight(torch.randn(1, 5, 4, 4), k).shape == (5, 1, 1, 4)
    assert _fir._weight(x.double(), k).dtype == torch.float64
    assert len(_fir._CPU_WEIGHTS) == 4
    for scale in (1.0, 2.0):
        got = _fir.fir_correlate(x, k * scale, 1, (0, 1))
        want = torch.nn.functional.conv2d(x, (k * scale).repeat(3, 1, 1, 1), padding=(0, 1), groups=3)
        torch.testing.assert_close(got, want)
