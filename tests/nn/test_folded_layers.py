"""CPU fast paths of the layers (activation gain folded into weights, in-place activations) equal the literal
conv/matmul + bias_act pipeline, forward and (double) backward (3DGP ref §1.1, §1.2, §4.1, §9)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradgradcheck

from stages.nn.layers import Conv2dLayer, FullyConnectedLayer
from stages.nn.synthesis import SynthesisLayer, ToRGBLayer, modulated_conv2d
from stages.ops import conv2d_resample
from stages.ops.bias_act import bias_act_ref


def _literal_fc(layer: FullyConnectedLayer, x):
    w = layer.weight * layer.weight_gain
    b = layer.bias * layer.bias_gain if layer.bias is not None else None
    return bias_act_ref(x.matmul(w.t()), b, act=layer.activation)


def _literal_conv(layer: Conv2dLayer, x, gain):
    w = layer.weight * layer.weight_gain
    x = conv2d_resample(x, w, f=layer.resample_filter, up=layer.up, down=layer.down, padding=layer.padding,
                        flip_weight=(layer.up == 1))
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return bias_act_ref(x, layer.bias, act=layer.activation, gain=layer.act_gain * gain, clamp=clamp)


@pytest.mark.parametrize("activation,bias", [("lrelu", True), ("relu", True), ("lrelu", False), ("linear", True),
                                             ("linear", False), ("softplus", True)])
def test_fc_fold_matches_bias_act(activation, bias):
    """The CPU path (gains as addmm's alpha/beta, activation gain folded) equals the literal layer, and so do its
    first and second derivatives w.r.t. the input and the parameters."""
    torch.manual_seed(0)
    layer = FullyConnectedLayer(5, 7, bias=bias, activation=activation, lr_multiplier=0.1, bias_init=0.3).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    want = _literal_fc(layer, x)
    torch.testing.assert_close(out, want)
    g1 = torch.autograd.grad(out.square().sum(), [x, layer.weight])
    g2 = torch.autograd.grad(want.square().sum(), [x, layer.weight])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    params = [x, layer.weight] + ([layer.bias] if bias else [])
    gg = []
    for y in (layer(x), _literal_fc(layer, x)):  # R1-style: the input gradient's norm, differentiated w.r.t. every parameter
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gg.append(torch.autograd.grad(gx.square().sum(), params, allow_unused=True))
    for a, b in zip(*gg):
        if a is None or b is None:
            assert a is None or not a.abs().sum(), "one form has a second derivative, the other none"
            continue
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("activation,bias,down,clamp,gain", [
    ("lrelu", True, 1, 256.0, 1.0), ("lrelu", True, 2, 0.5, 0.5 ** 0.5), ("linear", False, 2, None, 0.5 ** 0.5),
    ("relu", True, 1, None, 2.0)])
def test_conv_fold_matches_bias_act_to_second_order(activation, bias, down, clamp, gain):
    torch.manual_seed(1)
    layer = Conv2dLayer(3, 4, 3 if activation != "linear" else 1, bias=bias, activation=activation, down=down,
                        conv_clamp=clamp).double()
    if bias:
        with torch.no_grad():
            layer.bias.normal_()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(layer(x, gain=gain), _literal_conv(layer, x, gain))
    for fn in (lambda t: layer(t, gain=gain), lambda t: _literal_conv(layer, t, gain)):
        assert gradgradcheck(lambda t: fn(t).square(), (x,))
    # R1-style weight gradients of both forms agree.
    grads = []
    for fn in (lambda t: layer(t, gain=gain), lambda t: _literal_conv(layer, t, gain)):
        (gx,) = torch.autograd.grad(fn(x).square().sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(gx.square().sum(), layer.weight))
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("up", [1, 2])
def test_synthesis_layer_training_fold_matches_modconv_plus_bias_act(up):
    torch.manual_seed(2)
    layer = SynthesisLayer(4, 3, w_dim=6, resolution=8, up=up).double()
    with torch.no_grad():
        layer.bias.normal_()
        layer.noise_strength.fill_(0.3)
    x = torch.randn(2, 4, 8 // up, 8 // up, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 6, dtype=torch.float64)
    out = layer(x, w, noise_mode="const", fused_modconv=False)
    styles = layer.affine(w)
    noise = layer.noise_const * layer.noise_strength
    y = modulated_conv2d(x, layer.weight, styles, noise=noise, up=up, padding=1,
                         resample_filter=layer.resample_filter, flip_weight=(up == 1), fused_modconv=False)
    want = bias_act_ref(y, layer.bias, act="lrelu", gain=layer.act_gain)
    torch.testing.assert_close(out, want)
    g1 = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.noise_strength, layer.bias])
    g2 = torch.autograd.grad(want.square().sum(), [x, layer.weight, layer.noise_strength, layer.bias])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    # The eval (fused) path still agrees with the training path.
    torch.testing.assert_close(layer(x, w, noise_mode="const", fused_modconv=True), out)


@pytest.mark.parametrize("channels_last", [False, True])
def test_torgb_batched_matmul_matches_modconv_plus_bias(channels_last):
    torch.manual_seed(3)
    layer = ToRGBLayer(5, 6, w_dim=4).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w = torch.randn(2, 4, dtype=torch.float64)
    out = layer(x, w, fused_modconv=False)
    styles = layer.affine(w) * layer.weight_gain
    want = modulated_conv2d(x, layer.weight, styles, demodulate=False, fused_modconv=False)
    want = want + layer.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(out, want)
    g1 = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    g2 = torch.autograd.grad(want.square().sum(), [x, layer.weight, layer.bias])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_discriminator_channels_last_on_cpu_changes_nothing_but_speed(monkeypatch):
    import stages.nn.discriminator as dmod

    torch.manual_seed(4)
    D = dmod.Discriminator(img_resolution=32, patch_resolution=16, cbase=256, cmax=16, hyper_mod_dim=8,
                           patch_const_emb_dim=8, kd_dim=0).double()
    img = torch.randn(4, 4, 16, 16, dtype=torch.float64)
    patch = torch.rand(4, 3, dtype=torch.float64)
    results = []
    for flag in (True, False):
        monkeypatch.setattr(dmod, "CHANNELS_LAST_ON_CPU", flag)
        x = img.clone().requires_grad_(True)
        logits = D(x, None, patch)["logits"]
        (gx,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        results.append([logits, *torch.autograd.grad(gx.square().sum(), list(D.blocks.parameters()))])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
