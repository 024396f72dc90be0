"""conv2d_resample: fast paths equal the literal pipeline; gradcheck/gradgradcheck (3DGP ref §9)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from stages.ops import conv2d_resample, setup_filter, upsample2d, downsample2d
from stages.ops.conv2d_resample import conv2d_resample_general
from stages.ops.upfirdn2d import parse_padding


def _literal(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The spec pipeline, with the filter padding added the same way conv2d_resample documents."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw = fh = f.shape[-1]
    if up > 1:
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2
        y0, y1 = y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    return conv2d_resample_general(x, w, f, up, down, (x0, x1, y0, y1), groups, flip_weight, flip_filter)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2), (4, 1)])
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_fast_paths_equal_literal_pipeline(up, down, kernel, groups, flip_weight):
    gen = torch.Generator().manual_seed(kernel * 7 + up)
    x = torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, kernel, kernel, generator=gen, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    pad = kernel // 2
    y = conv2d_resample(x, w, f, up=up, down=down, padding=pad, groups=groups, flip_weight=flip_weight)
    assert y.shape == (2, 6, 6 * up // down, 6 * up // down)
    expected = _literal(x, w, f, up, down, pad, groups, flip_weight, False)
    torch.testing.assert_close(y, expected)


def test_plain_conv_and_flip_weight():
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d_resample(x, w, padding=1), F.conv2d(x, w, padding=1))
    torch.testing.assert_close(conv2d_resample(x, w, padding=1, flip_weight=False),
                               F.conv2d(x, w.flip([2, 3]), padding=1))


def test_up_then_conv_1x1_equals_upsample2d():
    """A 1x1 identity conv with up=2 is exactly upsample2d (the filter gain up**2 included)."""
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    w = torch.eye(2, dtype=torch.float64)[:, :, None, None]
    f = setup_filter([1, 3, 3, 1]).double()
    torch.testing.assert_close(conv2d_resample(x, w, f, up=2), upsample2d(x, f))
    torch.testing.assert_close(conv2d_resample(x, w, f, down=2), downsample2d(x, f))


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2), (1, 1)])
def test_gradcheck_and_gradgradcheck(up, down):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()

    def fn(x, w):
        return conv2d_resample(x, w, f, up=up, down=down, padding=1)

    assert gradcheck(fn, (x, w), eps=1e-6, atol=1e-6)
    assert gradgradcheck(fn, (x, w), eps=1e-6, atol=1e-6)


def _old_plain_path(x, w, padding, groups, flip_weight):
    """The former up = down = 1 path: an upfirdn2d pad pass, then a valid convolution."""
    from stages.ops.conv2d_resample import pad_input

    wc = w if flip_weight else w.flip([2, 3])
    return F.conv2d(pad_input(x, parse_padding(padding)), wc, groups=groups)


@pytest.mark.parametrize("padding", [0, 1, 2, [1, 2], [2, 0], [0, 1, 1, 0], [1, -1, 0, 0], [-1, -1, 1, 1]])
@pytest.mark.parametrize("groups,flip_weight", [(1, True), (2, False)])
def test_plain_conv_direct_padding_matches_pad_pass(padding, groups, flip_weight):
    """Symmetric non-negative padding goes straight to F.conv2d; outputs and grads equal the old pad pass."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 4, 7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = conv2d_resample(x, w, padding=padding, groups=groups, flip_weight=flip_weight)
    y_old = _old_plain_path(x, w, padding, groups, flip_weight)
    assert y.shape == y_old.shape
    torch.testing.assert_close(y, y_old, rtol=0, atol=1e-12)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad(y, (x, w), dy)
    grads_old = torch.autograd.grad(y_old, (x, w), dy)
    for g, g_old in zip(grads, grads_old):
        torch.testing.assert_close(g, g_old, rtol=0, atol=1e-12)


def test_plain_symmetric_padding_skips_the_pad_pass(monkeypatch):
    """The fast path must not call pad_input (the upfirdn2d pad pass); asymmetric padding still does."""
    import sys

    mod = sys.modules["stages.ops.conv2d_resample"]  # the package attribute of that name is the function
    calls = []
    real = mod.pad_input
    monkeypatch.setattr(mod, "pad_input", lambda x, pads: calls.append(pads) or real(x, pads))
    x = torch.randn(1, 2, 5, 5)
    w = torch.randn(3, 2, 3, 3)
    conv2d_resample(x, w, padding=1)
    conv2d_resample(x, w, padding=[1, 2])
    assert calls == []
    conv2d_resample(x, w, padding=[1, 0, 1, 1])
    assert calls == [(1, 0, 1, 1)]
