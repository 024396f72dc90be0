"""composite: an explicit Python loop as golden, opaque last sample, gradcheck/gradgradcheck (3DGP ref §1.6)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stages.ops import composite


def loop_composite(rgb, sigma_raw, t):
    """The classical marcher written out per ray and sample, in Python floats."""
    num_rays, num_samples, chans = rgb.shape
    rgb_out = torch.zeros(num_rays, chans, dtype=torch.float64)
    depth = torch.zeros(num_rays, 1, dtype=torch.float64)
    weights = torch.zeros(num_rays, num_samples, dtype=torch.float64)
    for r in range(num_rays):
        trans = 1.0
        for i in range(num_samples):
            delta = float(t[r, i + 1] - t[r, i]) if i + 1 < num_samples else 1e10
            sigma = math.log1p(math.exp(float(sigma_raw[r, i])))
            alpha = 1.0 - math.exp(-sigma * delta)
            w = alpha * trans
            weights[r, i] = w
            rgb_out[r] += w * rgb[r, i].double()
            depth[r, 0] += w * float(t[r, i])
            trans *= 1.0 - alpha + 1e-10
    return rgb_out, depth, weights


def _rays(num_rays=3, num_samples=6, chans=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randn(num_rays, num_samples, chans, generator=gen, dtype=dtype)
    sigma_raw = torch.randn(num_rays, num_samples, generator=gen, dtype=dtype)
    t = 0.75 + 0.5 * torch.sort(torch.rand(num_rays, num_samples, generator=gen, dtype=dtype), dim=1)[0]
    return rgb, sigma_raw, t


def test_matches_python_loop():
    rgb, sigma_raw, t = _rays()
    out = composite(rgb, sigma_raw, t)
    expected = loop_composite(rgb, sigma_raw, t)
    for got, want in zip(out, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)


def test_weights_sum_to_one_thanks_to_the_opaque_last_sample():
    rgb, sigma_raw, t = _rays(num_rays=16, num_samples=8, dtype=torch.float32)
    _, _, weights = composite(rgb, sigma_raw - 3.0, t)  # mostly transparent rays
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(16), atol=1e-5, rtol=0)


def test_single_opaque_sample_gives_its_depth_and_colour():
    rgb = torch.tensor([[[0.2, -0.4, 0.9]]])
    sigma_raw = torch.tensor([[-5.0]])  # any density: delta_last = 1e10 makes it opaque
    t = torch.tensor([[1.1]])
    rgb_out, depth, weights = composite(rgb, sigma_raw, t)
    torch.testing.assert_close(weights, torch.ones(1, 1))
    torch.testing.assert_close(depth, torch.tensor([[1.1]]))
    torch.testing.assert_close(rgb_out, rgb[:, 0])


def test_dense_first_sample_hides_the_rest():
    rgb = torch.tensor([[[1.0], [5.0], [9.0]]])
    t = torch.tensor([[0.8, 1.0, 1.2]])
    rgb_out, depth, _ = composite(rgb, torch.tensor([[60.0, 0.0, 0.0]]), t)
    assert abs(float(rgb_out) - 1.0) < 1e-4 and abs(float(depth) - 0.8) < 1e-4


def test_shape_errors_are_value_errors():
    with pytest.raises(ValueError, match="rgb"):
        composite(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))


def test_gradcheck_and_gradgradcheck():
    rgb, sigma_raw, t = _rays(num_rays=2, num_samples=4, chans=2, seed=1)
    inputs = (rgb.requires_grad_(True), sigma_raw.requires_grad_(True), t.requires_grad_(True))

    def fn(rgb, sigma_raw, t):
        return composite(rgb, sigma_raw, t, impl="ref")

    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)
