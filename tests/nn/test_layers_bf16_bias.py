"""Under bf16 autocast a layer hands bias_act a bias in the dtype of its output (issue 18 row 10).

The matmul (or conv) output is bf16 under autocast; a bias cast to the float32 input dtype stayed float32, and the
CUDA bias_act, which takes one dtype, quietly ran the slow reference path. On CPU, relu/lrelu layers take a folded
path without bias_act, so these tests use activations that always go through it (the CUDA path of every layer).
"""
from __future__ import annotations

import pytest
import torch

from stages.nn import layers
from stages.nn.layers import Conv2dLayer, FullyConnectedLayer


@pytest.fixture
def seen(monkeypatch):
    calls = []
    real = layers.bias_act

    def spy(x, b=None, **kwargs):
        calls.append((x.dtype, None if b is None else b.dtype))
        return real(x, b, **kwargs)

    monkeypatch.setattr(layers, "bias_act", spy)
    return calls


def test_fully_connected_bias_matches_the_bf16_output(seen):
    layer = FullyConnectedLayer(8, 6, activation="softplus", lr_multiplier=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer._forward_general(torch.randn(4, 8))  # CUDA's path; float32 input, like the MLP's features
        y_cpu = layer(torch.randn(4, 8))  # CPU: the bias rides on the bf16 addmm, bias_act gets none
    assert seen == [(torch.bfloat16, torch.bfloat16), (torch.bfloat16, None)]
    assert y.dtype == y_cpu.dtype == torch.bfloat16


def test_conv_bias_matches_the_bf16_output(seen):
    layer = Conv2dLayer(3, 5, kernel_size=3, activation="tanh")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(torch.randn(2, 3, 8, 8))
    assert seen == [(torch.bfloat16, torch.bfloat16)] and y.dtype == torch.bfloat16


def test_float32_is_unchanged(seen):
    layer = FullyConnectedLayer(8, 6, activation="softplus")
    x = torch.randn(4, 8)
    want = torch.nn.functional.softplus(x @ (layer.weight * layer.weight_gain).t() + layer.bias)
    for y in (layer._forward_general(x), layer(x)):  # CUDA's path, then CPU's (bias inside the addmm)
        torch.testing.assert_close(y, want)
    assert seen == [(torch.float32, torch.float32), (torch.float32, None)]
