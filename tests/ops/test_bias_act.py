"""bias_act reference path: golden values, gradcheck and gradgradcheck in float64 (3DGP ref §1.1, §9)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from stages.ops import bias_act
from stages.ops.bias_act import ACTIVATIONS

ALL_ACTS = sorted(ACTIVATIONS)


def _inputs(shape=(2, 3, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    b = torch.randn(shape[1], generator=gen, dtype=torch.float64)
    # Keep x + b away from the kinks of relu/lrelu (0) so finite differences are valid.
    pre = x + b[None, :, None]
    x = torch.where(pre.abs() < 0.05, x + 0.2, x)
    return x.requires_grad_(True), b.requires_grad_(True)


def test_default_gains_and_order():
    x = torch.tensor([[-1.0, 2.0]])
    b = torch.tensor([0.5, -0.5])
    # x + b = [-0.5, 1.5]; lrelu(0.2) = [-0.1, 1.5]; * sqrt(2)
    out = bias_act(x, b, act="lrelu")
    assert torch.allclose(out, torch.tensor([[-0.1, 1.5]]) * math.sqrt(2))
    out = bias_act(x, b, act="relu")
    assert torch.allclose(out, torch.tensor([[0.0, 1.5]]) * math.sqrt(2))
    assert torch.equal(bias_act(x, b, act="linear"), x + b)
    # clamp after the gain: 1.5 * sqrt(2) = 2.12 -> 2.0
    out = bias_act(x, b, act="lrelu", clamp=2.0)
    assert torch.allclose(out, torch.tensor([[-0.1 * math.sqrt(2), 2.0]]))
    out = bias_act(x, b, act="lrelu", alpha=0.5, gain=3.0)
    assert torch.allclose(out, torch.tensor([[-0.75, 4.5]]))


@pytest.mark.parametrize("act", ALL_ACTS)
def test_matches_torch_functional(act):
    x, b = _inputs()
    x, b = x.detach(), b.detach()
    pre = x + b[None, :, None]
    expected = {
        "linear": pre,
        "relu": F.relu(pre) * math.sqrt(2),
        "lrelu": F.leaky_relu(pre, 0.2) * math.sqrt(2),
        "tanh": torch.tanh(pre),
        "sigmoid": torch.sigmoid(pre),
        "elu": F.elu(pre),
        "selu": F.selu(pre),
        "softplus": F.softplus(pre),
        "swish": F.silu(pre) * math.sqrt(2),  # StyleGAN2 gain (was 1 before the spec review)
    }[act]
    torch.testing.assert_close(bias_act(x, b, act=act), expected)


def test_bias_along_other_dim():
    x = torch.zeros(2, 3, 4)
    b = torch.arange(4.0)
    out = bias_act(x, b, dim=2)
    assert torch.equal(out[1, 2], b)
    out = bias_act(x, b, dim=-1)
    assert torch.equal(out[0, 0], b)


@pytest.mark.parametrize("act", ALL_ACTS)
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_gradcheck_and_gradgradcheck(act, clamp):
    x, b = _inputs(seed=ALL_ACTS.index(act))
    if clamp is not None:  # keep outputs away from the clamp boundary as well
        y = bias_act(x.detach(), b.detach(), act=act)
        x = torch.where((y.abs() - clamp).abs() < 0.05, x.detach() + 0.13, x.detach()).requires_grad_(True)

    def fn(x, b):
        return bias_act(x, b, act=act, clamp=clamp, impl="ref")

    assert gradcheck(fn, (x, b), eps=1e-6, atol=1e-5)
    assert gradgradcheck(fn, (x, b), eps=1e-6, atol=1e-5)


def test_unknown_activation_is_a_value_error():
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(torch.zeros(1, 1), act="gelu2")


def test_bad_impl_is_a_value_error():
    with pytest.raises(ValueError, match="auto, ref, cuda"):
        bias_act(torch.zeros(1, 1), impl="triton")


def test_default_gains_match_the_layer_table():
    """Every activation's default gain equals stages.nn.layers.ACTIVATION_GAIN; swish is sqrt(2) (StyleGAN2)."""
    from stages.nn.layers import ACTIVATION_GAIN

    assert ACTIVATIONS["swish"].def_gain == pytest.approx(math.sqrt(2))
    assert {name: spec.def_gain for name, spec in ACTIVATIONS.items()} == pytest.approx(ACTIVATION_GAIN)
    x = torch.tensor([[-1.0, 0.5, 2.0]])
    torch.testing.assert_close(bias_act(x, act="swish"), F.silu(x) * math.sqrt(2))
    torch.testing.assert_close(bias_act(x, act="swish", gain=1.0), F.silu(x))
