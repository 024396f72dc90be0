"""Tri-plane synthesis backbone: counts, num_ws, modulated conv paths, noise (3DGP ref §1.2, §13, §14)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn.synthesis import DEMODULATION_EPS, SynthesisLayer, demodulation_coefficients, ToRGBLayer, TriPlaneSynthesis, block_channels, modulated_conv2d

DOGS = dict(cbase=32768, cmax=512, tri_plane_res=512, feat_dim=32)
IMAGENET = dict(cbase=65536, cmax=1024, tri_plane_res=512, feat_dim=32)
SMALL = dict(cbase=4096, cmax=128, tri_plane_res=128, feat_dim=16)
TINY = dict(cbase=256, cmax=32, tri_plane_res=16, feat_dim=4, w_dim=16)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sub_count(net: torch.nn.Module, kind: str) -> int:
    if kind == "torgb":
        return sum(_count(m) for m in net.modules() if isinstance(m, ToRGBLayer))
    assert kind == "affine"
    return sum(_count(m.affine) for m in net.modules() if isinstance(m, (SynthesisLayer, ToRGBLayer)))


@pytest.mark.parametrize("config, total, torgb, affines", [
    (DOGS, 28_455_823, 1_832_640, 4_596_480),
    (IMAGENET, 104_023_055, 3_664_512, 9_192_960),
    (SMALL, 2_122_347, 341_376, 919_296),
])
def test_param_counts_match_reference(config, total, torgb, affines):
    with torch.device("meta"):
        net = TriPlaneSynthesis(**config)
    assert _count(net) == total
    assert _sub_count(net, "torgb") == torgb
    assert _sub_count(net, "affine") == affines


def test_dogs_per_block_counts_and_channels():
    with torch.device("meta"):
        net = TriPlaneSynthesis(**DOGS)
    expected = [2_942_561] + [5_556_834] * 4 + [2_319_970, 717_666, 248_290]
    assert [_count(block) for block in net.blocks] == expected
    assert [block_channels(r, 32768, 512) for r in net.block_resolutions] == [512] * 5 + [256, 128, 64]
    assert [block_channels(r, 65536, 1024) for r in net.block_resolutions] == [1024] * 5 + [512, 256, 128]


def test_num_ws():
    with torch.device("meta"):
        assert TriPlaneSynthesis(**DOGS).num_ws == 16
        assert TriPlaneSynthesis(**SMALL).num_ws == 12
    assert TriPlaneSynthesis(**TINY).num_ws == 1 + 2 * 2 + 1


def test_modulated_conv_demodulation_golden():
    weight = torch.tensor([[3.0, 4.0]]).reshape(1, 2, 1, 1)  # O=1, I=2, 1x1
    x = torch.ones(1, 2, 2, 2)
    for fused in (True, False):
        y = modulated_conv2d(x, weight, torch.tensor([[1.0, 1.0]]), fused_modconv=fused)
        torch.testing.assert_close(y, torch.full([1, 1, 2, 2], 1.4))  # w = [0.6, 0.8]
        y = modulated_conv2d(x, weight, torch.tensor([[2.0, 1.0]]), fused_modconv=fused)
        torch.testing.assert_close(y, torch.full([1, 1, 2, 2], 10 / math.sqrt(52)))  # w = [6, 4] / sqrt(52)
        y = modulated_conv2d(x, weight, torch.tensor([[2.0, 1.0]]), demodulate=False, fused_modconv=fused)
        torch.testing.assert_close(y, torch.full([1, 1, 2, 2], 10.0))


def _literal_dcoefs(weight, styles):  # StyleGAN2's form: the [B, O, I, k, k] modulated weight, squared and summed
    w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)
    return (w.square().sum(dim=[2, 3, 4]) + DEMODULATION_EPS).rsqrt()


def test_demodulation_as_matmul_equals_the_modulated_weight_sum_to_second_order():
    torch.manual_seed(0)
    weight = torch.randn(5, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(demodulation_coefficients(weight, styles), _literal_dcoefs(weight, styles))
    grads = []
    for fn in (demodulation_coefficients, _literal_dcoefs):
        (gs,) = torch.autograd.grad(fn(weight, styles).sin().sum(), styles, create_graph=True)
        grads.append((gs, *torch.autograd.grad(gs.square().sum(), [weight, styles])))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    # float32 under bf16 autocast: the coefficients stay float32 and as exact as without autocast
    w32, s32 = weight.detach().float(), styles.detach().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = demodulation_coefficients(w32, s32)
        d_bf16_styles = demodulation_coefficients(w32, s32.bfloat16())  # an affine's output under autocast
    assert d.dtype == d_bf16_styles.dtype == torch.float32
    torch.testing.assert_close(d, _literal_dcoefs(w32, s32), rtol=1e-5, atol=0)
    torch.testing.assert_close(d_bf16_styles, _literal_dcoefs(w32, s32.bfloat16()), rtol=1e-5, atol=0)


@pytest.mark.parametrize("up, demodulate", [(1, True), (2, True), (1, False)])
def test_fused_equals_non_fused(up, demodulate):
    torch.manual_seed(0)
    layer = SynthesisLayer(6, 5, w_dim=8, resolution=8 * up, up=up)
    x = torch.randn(3, 6, 8, 8)
    styles = torch.randn(3, 6)
    noise = torch.randn(3, 1, 8 * up, 8 * up)
    kwargs = dict(noise=noise, up=up, padding=1, resample_filter=layer.resample_filter, demodulate=demodulate,
                  flip_weight=(up == 1))
    fused = modulated_conv2d(x, layer.weight, styles, fused_modconv=True, **kwargs)
    split = modulated_conv2d(x, layer.weight, styles, fused_modconv=False, **kwargs)
    assert fused.shape == (3, 5, 8 * up, 8 * up)
    torch.testing.assert_close(fused, split, atol=1e-4, rtol=1e-4)


def test_triplane_shape_and_train_eval_paths_agree():
    torch.manual_seed(0)
    net = TriPlaneSynthesis(**TINY)
    ws = torch.randn(2, net.num_ws, 16)
    net.eval()  # fused grouped conv
    planes_eval = net(ws, noise_mode="const")
    net.train()  # non-fused path
    planes_train = net(ws, noise_mode="const")
    assert planes_eval.shape == (2, 3, 4, 16, 16)
    torch.testing.assert_close(planes_eval, planes_train, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(net(ws, noise_mode="const", fused_modconv=True), planes_train, atol=1e-4, rtol=1e-4)


def test_noise_modes():
    torch.manual_seed(0)
    net = TriPlaneSynthesis(**TINY)
    for p in net.parameters():
        if p.ndim == 0:  # the noise strengths start at 0; make the noise visible
            torch.nn.init.constant_(p, 0.5)
    ws = torch.randn(2, net.num_ws, 16)
    torch.testing.assert_close(net(ws, noise_mode="const"), net(ws, noise_mode="const"))
    assert not torch.allclose(net(ws, noise_mode="random"), net(ws, noise_mode="random"))
    assert not torch.allclose(net(ws, noise_mode="none"), net(ws, noise_mode="const"))
    with pytest.raises(AssertionError):
        net(ws, noise_mode="bogus")


def test_noise_strength_starts_at_zero():
    net = TriPlaneSynthesis(**TINY)
    strengths = [p for name, p in net.named_parameters() if name.endswith("noise_strength")]
    assert len(strengths) == 1 + 2 * 2 and all(float(s.detach()) == 0.0 for s in strengths)
    ws = torch.randn(1, net.num_ws, 16)
    torch.testing.assert_close(net(ws, noise_mode="random"), net(ws, noise_mode="none"))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    net = TriPlaneSynthesis(**TINY).train()
    ws = torch.randn(2, net.num_ws, 16, requires_grad=True)
    net(ws).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert missing == [] and ws.grad is not None
