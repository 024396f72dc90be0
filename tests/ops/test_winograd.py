"""Winograd F(4x4, 3x3) for the 3x3 stride-1 convolutions on CPU, against direct convolutions (issue 21 §1 (iii))."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.ops import _cpu_build, _impl, conv2d_gradfix, winograd

TOL = 5e-5  # max |winograd - exact| / max |exact| (measured ~1e-5; a direct float32 conv: ~3e-7)


def _relative(got, want) -> float:
    got, want = got.detach().double(), want.detach()
    return float((got - want).abs().max() / want.abs().max())


@pytest.fixture()
def small_too(monkeypatch, cpu_kernels):
    """Let the test's small convolutions take Winograd (the size gate exists for speed only)."""
    monkeypatch.setattr(winograd, "MIN_MACS", 0)
    monkeypatch.setattr(winograd, "MIN_SIZE", 1)


@pytest.mark.parametrize("n,c,o,h,w", [(2, 16, 24, 16, 16), (3, 8, 8, 13, 10), (1, 32, 16, 5, 7), (2, 8, 16, 1, 9)])
def test_the_three_products_equal_exact_convolutions(small_too, n, c, o, h, w):
    gen = torch.Generator().manual_seed(n * h + w)
    x = torch.randn(n, c, h, w, generator=gen)
    k = torch.randn(o, c, 3, 3, generator=gen) / (3 * c**0.5)
    gy = torch.randn(n, o, h, w, generator=gen)
    xd, kd, gyd = x.double(), k.double(), gy.double()
    y = winograd.conv3x3(x, k)
    assert y.shape == (n, o, h, w) and y.is_contiguous(memory_format=torch.channels_last)
    assert _relative(y, F.conv2d(xd, kd, padding=1)) < TOL
    gx = winograd.conv3x3_input_grad(gy, k)
    assert gx.shape == x.shape
    assert _relative(gx, torch.nn.grad.conv2d_input(x.shape, kd, gyd, padding=1)) < TOL
    gk = winograd.conv3x3_weight_grad(x, gy)
    assert gk.shape == k.shape
    assert _relative(gk, torch.nn.grad.conv2d_weight(xd, k.shape, gyd, padding=1)) < TOL
    # Input layout does not matter (channels-last is the transforms' own, NCHW is converted).
    torch.testing.assert_close(winograd.conv3x3(x.contiguous(memory_format=torch.channels_last), k), y, rtol=0,
                               atol=0)


def _r1_like(x, param, conv):
    """R1's pattern on two layers: the gradient w.r.t. the input, created as a graph, its squared norm
    differentiated w.r.t. the weights (every derivative of every product, to second order)."""
    w = param * 0.5  # non-leaf, as D's equalized-lr weights
    h = F.leaky_relu(conv(x, w), 0.2)
    y = conv(h, w)
    out = (y.square().mean(dim=[1, 2, 3]) + y.mean(dim=[1, 2, 3]) ** 3).sum()  # not linear: second derivatives
    (gx,) = torch.autograd.grad(out, x, create_graph=True)
    penalty = gx.square().sum()
    (gp,) = torch.autograd.grad(penalty + out, param)
    return out.detach(), gx.detach(), gp


def test_gradfix_takes_it_and_matches_the_direct_path_to_second_order(small_too, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 16, 12, 12, generator=gen)
    p0 = torch.randn(16, 16, 3, 3, generator=gen) / 12

    def conv(x, w):
        return conv2d_gradfix.conv2d(x, w, padding=1)

    calls = {"conv3x3": 0, "conv3x3_input_grad": 0, "conv3x3_weight_grad": 0}
    for name in calls:
        def counted(*args, _fn=getattr(winograd, name), _name=name, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(winograd, name, counted)
    runs = []
    for mode in ("1", "0"):
        monkeypatch.setenv(winograd.ENABLE_ENV, mode)
        _impl.reset_report()
        runs.append(_r1_like(x0.clone().requires_grad_(True), p0.clone().requires_grad_(True), conv))
        assert ("conv3x3" in _impl.impl_report()) == (mode == "1")
        if mode == "1":
            assert all(count > 0 for count in calls.values()), calls  # forward, both gradients, all via Winograd
            counted_on = dict(calls)
    assert calls == counted_on  # THREEDGP_WINOGRAD=0: none of them
    for got, want in zip(*runs):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_the_gate():
    x = torch.randn(8, 128, 32, 32)
    assert winograd.usable(x, (128, 128, 3, 3), (1, 1), (1, 1), 1) is (_cpu_build.get_library() is not None)
    refused = [
        (x, (128, 128, 3, 3), (2, 2), (1, 1), 1),          # strided
        (x, (128, 128, 1, 1), (1, 1), (0, 0), 1),          # pointwise
        (x, (128, 128, 3, 3), (1, 1), (0, 0), 1),          # valid (no padding)
        (x, (128, 64, 3, 3), (1, 1), (1, 1), 2),           # grouped
        (x.double(), (128, 128, 3, 3), (1, 1), (1, 1), 1),  # float64
        (x[:, :100], (128, 100, 3, 3), (1, 1), (1, 1), 1),  # channels not a multiple of 8
        (x[:1, :, :8, :8], (128, 128, 3, 3), (1, 1), (1, 1), 1),  # too small to pay for the transforms
        (x[:, :, :4, :4].repeat(8, 1, 1, 1), (128, 128, 3, 3), (1, 1), (1, 1), 1),  # images below 8 x 8
        (torch.empty(8, 128, 32, 32, device="meta"), (128, 128, 3, 3), (1, 1), (1, 1), 1),  # not a CPU tensor
    ]
    for args in refused:
        assert not winograd.usable(*args), args[1:]


def test_switched_off(monkeypatch):
    x = torch.randn(8, 128, 32, 32)
    monkeypatch.setenv(winograd.ENABLE_ENV, "0")
    assert not winograd.usable(x, (128, 128, 3, 3), (1, 1), (1, 1), 1)
    monkeypatch.setenv(winograd.ENABLE_ENV, "1")
    monkeypatch.setenv(_cpu_build.ENABLE_ENV, "0")  # no CPU kernels: the direct convolutions run
    assert not winograd.usable(x, (128, 128, 3, 3), (1, 1), (1, 1), 1)


def test_a_changed_kernel_is_never_served_from_the_memo(small_too):
    """The kernel's tiles are kept on the tensor between calls; a change must void them -- including a parameter
    updated by the fused Adam, which does not bump the version counter."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 8, 8, generator=gen)
    param = torch.nn.Parameter(torch.randn(8, 8, 3, 3, generator=gen))
    w = param * 1.0  # non-leaf: its tiles are kept
    winograd.conv3x3(x, w)
    assert hasattr(w, winograd._MEMO)
    with torch.no_grad():
        w.mul_(2)  # a recorded in-place change: new version
    assert _relative(winograd.conv3x3(x, w), F.conv2d(x.double(), w.double(), padding=1)) < TOL
    # A leaf keeps nothing, so an update that autograd does not see cannot leave stale tiles behind.
    winograd.conv3x3(x, param)
    assert not hasattr(param, winograd._MEMO)
    param.grad = torch.randn_like(param)
    version = param._version
    torch.optim.Adam([param], lr=0.5, fused=True).step()
    assert param._version == version  # what makes a memo on leaves unsafe
    assert _relative(winograd.conv3x3(x, param), F.conv2d(x.double(), param.detach().double(), padding=1)) < TOL


def test_share_keeps_a_gradients_tiles_for_its_two_products_only(small_too):
    gen = torch.Generator().manual_seed(2)
    gg = torch.randn(2, 8, 8, 8, generator=gen)
    w = torch.randn(8, 8, 3, 3, generator=gen)
    with winograd.share(gg):
        y = winograd.conv3x3(gg, w, remember=True)
        assert hasattr(gg, winograd._MEMO)
        gk = winograd.conv3x3_weight_grad(gg, y)
    assert not hasattr(gg, winograd._MEMO) and not winograd._shared
    assert _relative(gk, torch.nn.grad.conv2d_weight(gg.double(), w.shape, y.double(), padding=1)) < TOL


def test_the_thread_count_does_not_change_the_transforms(small_too):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 16, 16, 16, generator=gen)
    lib = winograd._library()
    tiles = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        tiles.append(winograd._tiles(lib.threedgp_wino_input, x, winograd._team(1 << 30)))
    assert torch.equal(*tiles)


def test_the_selfcheck_catches_a_wrong_transform(cpu_kernels):
    real = _cpu_build.get_library()
    assert winograd.selfcheck(real) is None

    class Wrong:  # the weight gradient's transform of gy drops the last channel block
        threedgp_wino_input = real.threedgp_wino_input
        threedgp_wino_output = real.threedgp_wino_output

        @staticmethod
        def threedgp_wino_grad_output(src, dst, n, h, w, c, team):
            real.threedgp_wino_grad_output(src, dst, n, h, w, c - 8, team)

    assert "weight gradient differs" in winograd.selfcheck(Wrong())
