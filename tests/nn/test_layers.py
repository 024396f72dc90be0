"""Equalized-lr layers: golden outputs, init statistics and gradients (3DGP ref §1.1)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn.layers import Conv2dLayer, FullyConnectedLayer, activation_gain, normalize_2nd_moment

SQRT2 = math.sqrt(2)


def test_normalize_2nd_moment_golden():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    y = normalize_2nd_moment(x)
    rms = math.sqrt(12.5)
    torch.testing.assert_close(y[0], torch.tensor([3 / rms, 4 / rms]))
    torch.testing.assert_close(y[1], torch.zeros(2))  # eps keeps zeros finite
    z = normalize_2nd_moment(torch.randn(5, 7, 3), dim=1)
    torch.testing.assert_close(z.square().mean(dim=1), torch.ones(5, 3), atol=1e-5, rtol=0)


def test_activation_gain_defaults():
    assert activation_gain("lrelu") == pytest.approx(SQRT2)
    assert activation_gain("linear") == 1.0
    assert activation_gain("softplus") == 1.0


@pytest.mark.parametrize("activation, expected", [("linear", 3.0), ("lrelu", 3.0 * SQRT2)])
def test_fc_golden_with_lr_multiplier(activation, expected):
    fc = FullyConnectedLayer(4, 2, activation=activation, lr_multiplier=0.01, bias_init=1.0)
    # Stored values are divided by lr_mult: bias 1 / 0.01 = 100; runtime weight = stored * 0.01 / sqrt(4).
    torch.testing.assert_close(fc.bias.detach(), torch.full([2], 100.0))
    with torch.no_grad():
        fc.weight.fill_(100.0)  # effective weight 100 * 0.01 / 2 = 0.5
    y = fc(torch.ones(3, 4))  # 4 * 0.5 + 1 = 3
    torch.testing.assert_close(y, torch.full([3, 2], expected))


def test_fc_lrelu_negative_slope():
    fc = FullyConnectedLayer(1, 1, activation="lrelu")
    with torch.no_grad():
        fc.weight.fill_(1.0)
    y = fc(torch.tensor([[-2.0], [2.0]]))
    torch.testing.assert_close(y, torch.tensor([[-0.4 * SQRT2], [2.0 * SQRT2]]))


def test_fc_init_statistics_and_grad():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(512, 512, lr_multiplier=0.01)
    assert fc.weight.std().item() == pytest.approx(100.0, rel=0.02)  # N(0, 1) / lr_mult
    y = fc(torch.randn(256, 512))
    assert y.std().item() == pytest.approx(1.0, rel=0.1)  # runtime weight N(0, 1 / fan_in): unit-variance output
    y.sum().backward()
    assert fc.weight.grad is not None and fc.bias.grad is not None
    assert sum(p.numel() for p in fc.parameters()) == 512 * 512 + 512


def test_fc_without_bias():
    fc = FullyConnectedLayer(3, 5, bias=False)
    assert fc.bias is None and fc(torch.randn(2, 3)).shape == (2, 5)


def _ones_conv(**kwargs) -> Conv2dLayer:
    conv = Conv2dLayer(1, 1, 3, **kwargs)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return conv


def test_conv_same_padding_golden():
    y = _ones_conv()(torch.ones(1, 1, 4, 4))  # weight gain 1 / sqrt(9)
    assert y.shape == (1, 1, 4, 4)
    torch.testing.assert_close(y[0, 0, 1, 1], torch.tensor(3.0))  # 9 taps / 3
    torch.testing.assert_close(y[0, 0, 0, 0], torch.tensor(4.0 / 3.0))  # corner: 4 taps / 3
    y2 = _ones_conv(activation="lrelu")(torch.ones(1, 1, 4, 4), gain=0.5)
    torch.testing.assert_close(y2[0, 0, 1, 1], torch.tensor(3.0 * SQRT2 * 0.5))


@pytest.mark.parametrize("up, down, size", [(2, 1, 16), (1, 2, 4)])
def test_conv_resample_preserves_constant_interior(up, down, size):
    y = _ones_conv(up=up, down=down)(torch.ones(1, 1, 8, 8))
    assert y.shape == (1, 1, size, size)
    interior = y[0, 0, 3:-3, 3:-3] if size > 8 else y[0, 0, 1:-1, 1:-1]
    torch.testing.assert_close(interior, torch.full_like(interior, 3.0), atol=1e-5, rtol=0)


def test_conv_clamp_and_buffers():
    conv = Conv2dLayer(2, 3, 1, conv_clamp=0.1, trainable=False)
    assert len(list(conv.parameters())) == 0 and "weight" in dict(conv.named_buffers())
    y = conv(torch.randn(2, 2, 5, 5) * 100)
    assert y.abs().max().item() <= 0.1 + 1e-6


def test_conv_param_count_and_backward():
    conv = Conv2dLayer(64, 64, 5, activation="lrelu", channels_last=True)
    assert sum(p.numel() for p in conv.parameters()) == 64 * 64 * 25 + 64
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    conv(x).square().mean().backward()
    assert x.grad is not None and conv.weight.grad is not None
