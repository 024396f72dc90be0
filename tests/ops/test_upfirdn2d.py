"""upfirdn2d reference path: a naive loop as golden, filter helpers, gradcheck/gradgradcheck (3DGP ref §9)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stages.ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d


def naive_upfirdn2d(x, f, up, down, pads, flip_filter=False, gain=1.0):
    """Spec, literally: zero-insert, pad/crop, true 2-D convolution (valid), keep every down-th pixel."""
    x0, x1, y0, y1 = pads
    f2 = f if f.ndim == 2 else torch.outer(f, f)
    f2 = f2 * gain
    if flip_filter:
        f2 = f2.flip([0, 1])
    batch, chans, h, w = x.shape
    fh, fw = f2.shape
    hu, wu = h * up, w * up
    hp, wp = hu + y0 + y1, wu + x0 + x1

    def padded(n, c, py, px):  # pixel of the padded, upsampled image
        uy, ux = py - y0, px - x0
        if not (0 <= uy < hu and 0 <= ux < wu) or uy % up or ux % up:
            return 0.0
        return float(x[n, c, uy // up, ux // up])

    out_h, out_w = (hp - fh) // down + 1, (wp - fw) // down + 1
    out = torch.zeros(batch, chans, out_h, out_w, dtype=torch.float64)
    for n in range(batch):
        for c in range(chans):
            for oy in range(out_h):
                for ox in range(out_w):
                    acc = 0.0
                    cy, cx = oy * down + fh - 1, ox * down + fw - 1  # convolution: out[i] = sum_k f[k] in[i-k]
                    for ky in range(fh):
                        for kx in range(fw):
                            acc += float(f2[ky, kx]) * padded(n, c, cy - ky, cx - kx)
                    out[n, c, oy, ox] = acc
    return out


CASES = [  # (up, down, pads, taps, separable)
    (1, 1, (0, 0, 0, 0), [1, 2, 3], False),
    (2, 1, (2, 1, 2, 1), [1, 3, 3, 1], False),
    (1, 2, (1, 1, 1, 1), [1, 3, 3, 1], False),
    (2, 2, (1, 2, 0, 3), [1, 3, 3, 1], False),
    (3, 1, (0, -1, 1, -2), [1, 2, 1], False),
    (1, 1, (1, 1, 1, 1), [[1, 2], [3, 4], [5, 6]], False),
    (2, 1, (4, 3, 4, 3), [1, 2, 3, 4, 4, 3, 2, 1], True),
]


@pytest.mark.parametrize("up,down,pads,taps,separable", CASES)
@pytest.mark.parametrize("flip_filter", [False, True])
def test_matches_naive_loop(up, down, pads, taps, separable, flip_filter):
    gen = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(1, 2, 5, 4, generator=gen, dtype=torch.float64)
    f = setup_filter(taps, normalize=False, separable=separable).double()
    assert f.ndim == (1 if separable else 2)
    y = upfirdn2d(x, f, up=up, down=down, padding=list(pads), flip_filter=flip_filter, gain=1.7)
    expected = naive_upfirdn2d(x, f, up, down, pads, flip_filter=flip_filter, gain=1.7)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected)


def test_filter_normalisation_and_gain():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert abs(float(f.sum()) - 1.0) < 1e-6
    torch.testing.assert_close(f[0], torch.tensor([1, 3, 3, 1]) / 64.0)
    assert setup_filter([1] * 8).shape == (8,)  # 8+ taps stay separable by default
    assert abs(float(setup_filter([1, 3, 3, 1], gain=4).sum()) - 4.0) < 1e-5
    assert torch.equal(setup_filter(None), torch.ones(1, 1))
    torch.testing.assert_close(setup_filter([1, 2, 3], flip_filter=True, separable=True), torch.tensor([3, 2, 1]) / 6)


def test_resampling_preserves_a_constant_image():
    f = setup_filter([1, 3, 3, 1])
    x = torch.full((1, 3, 8, 8), 0.75)
    up = upsample2d(x, f)  # gain up**2 compensates the inserted zeros
    assert up.shape == (1, 3, 16, 16)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.75))
    assert abs(float(up.mean()) - 0.75) < 0.05  # borders see zero padding
    down = downsample2d(x, f)
    assert down.shape == (1, 3, 4, 4)
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full((1, 3, 2, 2), 0.75))
    blur = filter2d(x, f)
    assert blur.shape == x.shape
    torch.testing.assert_close(blur[..., 2:-2, 2:-2], torch.full((1, 3, 4, 4), 0.75))


def test_output_sizes_with_odd_filters_and_padding():
    x = torch.randn(2, 1, 7, 9)
    f = setup_filter([1, 2, 1])
    assert upsample2d(x, f, up=2).shape == (2, 1, 14, 18)
    assert downsample2d(torch.randn(1, 1, 8, 10), f).shape == (1, 1, 4, 5)
    assert filter2d(x, f, padding=1).shape == (2, 1, 9, 11)
    assert upfirdn2d(x, None).shape == x.shape
    assert torch.equal(upfirdn2d(x, None, padding=[-1, 0, 0, -2]), x[:, :, :-2, 1:])


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, up=0)
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=[1, 2, 3])
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, padding=-3)


@pytest.mark.parametrize("up,down,pads,taps,separable", CASES[1:5] + CASES[6:])
def test_gradcheck_and_gradgradcheck(up, down, pads, taps, separable):
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter(taps, separable=separable).double()

    def fn(x):
        return upfirdn2d(x, f, up=up, down=down, padding=list(pads), gain=1.3, impl="ref")

    assert gradcheck(fn, (x,), eps=1e-6, atol=1e-6)
    assert gradgradcheck(fn, (x,), eps=1e-6, atol=1e-6)
