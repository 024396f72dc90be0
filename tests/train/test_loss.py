"""Loss terms with golden values (3DGP ref §3.5, §4.3, §5.1, §5.2, §5.3)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.train import loss as L


def test_blur_kernels():
    assert L.gaussian_like_kernel(0.3) is None  # floor(3 sigma) = 0: identity
    f = L.gaussian_like_kernel(1.0)
    expected = torch.tensor([2.0 ** -(k * k) for k in range(-3, 4)])
    torch.testing.assert_close(f, expected / expected.sum())
    f_depth = L.gaussian_like_kernel(1.0, width=L.DEPTH_BLUR_WIDTH)  # width 30 on the same support (quirk)
    assert f_depth.shape == (7,) and float(f_depth.max() / f_depth.min()) == pytest.approx(2 ** (9 / 900))
    img = torch.zeros(1, 4, 9, 9)
    img[0, :, 4, 4] = 1.0
    out = L.blur_d_input(img, 1.0, has_depth=True)
    assert out.shape == img.shape and out[0, 0].sum().item() == pytest.approx(1.0)
    assert out[0, 3, 4, 4] < out[0, 0, 4, 4]  # depth blurred twice
    assert torch.equal(L.blur_d_input(img, 0.0, True), img)


def test_adversarial_losses():
    logits = torch.tensor([0.0, 2.0])
    torch.testing.assert_close(L.g_adversarial_loss(logits), torch.log1p(torch.exp(-logits)))
    torch.testing.assert_close(L.d_fake_loss(logits), torch.log1p(torch.exp(logits)))
    assert L.d_real_loss(torch.tensor([0.0])).item() == pytest.approx(math.log(2))


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(4, 3, 3)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    logits = (x * w).sum(dim=[1, 2, 3]) ** 1  # [2]
    penalty = L.r1_penalty(logits, x)
    torch.testing.assert_close(penalty, w.square().sum().expand(2))
    assert penalty.requires_grad or not w.requires_grad  # graph kept for the double backward


def test_kd_loss_is_an_unsquared_norm_weighted_by_patch_scale():
    feats, target = torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.zeros(2, 2)
    kd = L.kd_loss(feats, target, torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(kd, torch.tensor([5.0 * 1 / 0.75, 0.0]))


def test_grad_sanitising():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
    assert L.sanitize_grads_([p]) == 3
    assert p.grad.tolist() == [0.0, 1e5, -1e5, 1.0]
