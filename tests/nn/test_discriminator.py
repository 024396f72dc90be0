"""The 3DGP discriminator: parameter counts of ref §14, shapes, patch encoding, mbstd, hyper-modulation, KD head."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn.build import build_discriminator
from stages.nn.config import get_preset, with_overrides
from stages.nn.disc_blocks import DiscriminatorBlock, MinibatchStdLayer
from stages.nn.discriminator import Discriminator
from stages.nn.param_counts import count_parameters, discriminator_block_counts, discriminator_breakdown
from stages.nn.scalar_encoder import ScalarEncoder1d


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def meta_discriminator(preset: str, **disc_overrides) -> Discriminator:
    cfg = get_preset(preset)
    if disc_overrides:
        cfg = with_overrides(cfg, discriminator=disc_overrides)
    with torch.device("meta"):
        return build_discriminator(cfg)


def small_dogs_like(kd_dim: int = 2048, c_dim: int = 0) -> Discriminator:
    """The dogs layout (256 virtual, 64 patch, 828-d patch embedding, 2048 KD) with narrow channels."""
    torch.manual_seed(0)
    return Discriminator(c_dim=c_dim, cbase=1024, cmax=16, hyper_mod_dim=32, kd_dim=kd_dim)


# --- ref §14: parameter counts -------------------------------------------------------------------------------

DOGS_ROWS = {
    "D total (official)": 37_786_752,
    "D total (ours, no dead fromrgb)": 37_786_752 - 11_520,
    "D blocks (official)": 23_563_648,
    "D blocks (ours)": 23_563_648 - 11_520,
    "  of which hyper-mod affines": 1_247_616,
    "  of which dead fromrgb layers (official only)": 11_520,
    "D epilogue without KD head": 6_821_888,
    "D patch-parameter embedding table": 256_256,
    "D hyper-mod mapping": 949_760,
    "D head mapping": 949_760,
    "D KD head": 5_245_440,
}
IMAGENET_ROWS = {
    "D total (official)": 143_055_360,
    "D total (ours, no dead fromrgb)": 143_055_360 - 23_040,
    "D blocks (official)": 91_724_544,
    "D blocks (ours)": 91_724_544 - 23_040,
    "  of which hyper-mod affines": 2_495_232,
    "  of which dead fromrgb layers (official only)": 23_040,
    "D epilogue without KD head": 27_275_264,
    "D patch-parameter embedding table": 256_256,
    "D hyper-mod mapping": 949_760,
    "D head mapping": 3_972_096,
    "D KD head": 18_877_440,
}
SMALL_ROWS = {
    "D total (official)": 3_631_200,
    "D total (ours, no dead fromrgb)": 3_631_200 - 2_240,
    "D blocks (official)": 1_332_064,
    "D blocks (ours)": 1_332_064 - 2_240,
    "  of which hyper-mod affines": 246_240,
    "  of which dead fromrgb layers (official only)": 2_240,
    "D epilogue without KD head": 427_520,
    "D patch-parameter embedding table": 256_256,
    "D hyper-mod mapping": 949_760,
    "D head mapping": 139_136,
    "D KD head": 526_464,
}


@pytest.mark.parametrize("preset, rows", [("dogs", DOGS_ROWS), ("imagenet", IMAGENET_ROWS), ("small", SMALL_ROWS)])
def test_discriminator_parameter_counts_match_ref14(preset, rows):
    D = meta_discriminator(preset)
    assert dict(discriminator_breakdown(D)) == rows
    assert count_parameters(D) == rows["D total (ours, no dead fromrgb)"]


def test_dogs_discriminator_per_block_counts():
    D = meta_discriminator("dogs")
    got = [(name, tmp, out, down, official) for name, tmp, out, down, _, official in discriminator_block_counts(D)]
    assert got == [
        ("b256", 128, 256, 1, 541_824),
        ("b128", 256, 512, 1, 2_033_920),
        ("b64", 512, 512, 2, 5_246_976),
        ("b32", 512, 512, 2, 5_246_976),
        ("b16", 512, 512, 2, 5_246_976),
        ("b8", 512, 512, 2, 5_246_976),
    ]
    ours = [row[4] for row in discriminator_block_counts(D)]
    assert ours == [541_824, 2_033_920 - 1_280] + [5_246_976 - 2_560] * 4


def test_imagenet_cmap_and_head_mapping_input():
    D = meta_discriminator("imagenet")
    assert D.cmap_dim == 1024
    assert D.head_mapping.c_dim == 1828
    assert meta_discriminator("dogs").head_mapping.c_dim == 828


def test_kd_head_off_builds_nothing():
    D = meta_discriminator("dogs", kd_dim=0)
    assert D.epilogue.kd_fc is None and D.epilogue.kd_out is None
    assert count_parameters(D) == DOGS_ROWS["D total (ours, no dead fromrgb)"] - DOGS_ROWS["D KD head"]


def test_fp16_blocks_are_the_first_four_and_cpu_runs_fp32():
    D = meta_discriminator("dogs")
    assert [b.use_fp16 for b in D.blocks.values()] == [True] * 4 + [False] * 2
    assert D.blocks["b256"].compute_dtype(torch.device("cpu")) == torch.float32
    assert D.blocks["b256"].compute_dtype(torch.device("cuda"), force_fp32=True) == torch.float32
    assert D.blocks["b256"].compute_dtype(torch.device("cuda")) == torch.float16
    assert D.blocks["b256"].conv1.conv_clamp == 256.0 and D.epilogue.conv.conv_clamp == 256.0


# --- shapes ------------------------------------------------------------------------------------------------------

def test_dogs_discriminator_output_shapes_on_meta():
    D = meta_discriminator("dogs")
    img = torch.empty(4, 4, 64, 64, device="meta")
    out = D(img, None, torch.empty(4, 3, device="meta"))
    assert out["logits"].shape == (4,)
    assert out["kd_features"].shape == (4, 2048)


def test_dogs_layout_forward_backward_on_cpu():
    D = small_dogs_like()
    assert [b.down for b in D.blocks.values()] == [1, 1, 2, 2, 2, 2]
    img = torch.randn(4, 4, 64, 64, requires_grad=True)
    out = D(img, None, torch.rand(4, 3))
    assert out["logits"].shape == (4,) and out["kd_features"].shape == (4, 2048)
    assert torch.isfinite(out["logits"]).all()
    (grad,) = torch.autograd.grad(out["logits"].sum(), img, create_graph=True)  # R1 needs create_graph
    assert grad.shape == img.shape and grad.abs().sum() > 0


def test_projection_logit_and_class_conditioning():
    D = small_dogs_like(kd_dim=0, c_dim=10)
    img, patch = torch.randn(4, 4, 64, 64), torch.rand(4, 3)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 10).float()
    captured = {}
    D.epilogue.out.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    out = D(img, c, patch)
    assert out["kd_features"] is None
    _, cmap = D.patch_codes(c, patch)
    expected = (captured["out"] * cmap).sum(dim=1) / math.sqrt(D.cmap_dim)
    torch.testing.assert_close(out["logits"], expected)
    other = D(img, c.roll(1, dims=0), patch)["logits"]
    assert not torch.allclose(other, out["logits"])


def test_batch_not_multiple_of_group_is_a_value_error():
    D = small_dogs_like(kd_dim=0)
    with pytest.raises(ValueError, match="multiple of the minibatch-stddev group size"):
        D(torch.randn(6, 4, 64, 64), None, torch.rand(6, 3))


# --- ref §4.2: patch embedding -----------------------------------------------------------------------------------

def test_scalar_encoder_is_828_d_with_golden_fourier_values():
    enc = ScalarEncoder1d(coord_dim=3, x_multiplier=1000, const_emb_dim=256)
    assert enc.num_freqs == 10 and enc.out_dim == 828
    x = torch.tensor([[0.25, 0.5, 1.0]])
    out = enc(x).reshape(3, 276)
    # Scalar 0.25 -> X = 250: sin/cos(pi * 250 * 2^k / 1024) for k = 0, 1, 9.
    torch.testing.assert_close(out[0, [0, 1, 9]], torch.tensor([0.693971, 0.999322, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, [10, 11, 19]], torch.tensor([0.720003, 0.036807, -1.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1, [0, 10, 11]], torch.tensor([0.999322, 0.036807, -0.99729]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[2, [0, 1, 10, 11]], torch.tensor([0.073565, -0.14673, -0.99729, 0.989177]),
                               atol=1e-4, rtol=0)
    # Learned part: the table row round(1000 x).
    table = enc.const_embed.weight
    torch.testing.assert_close(out[0, 20:], table[250])
    torch.testing.assert_close(out[1, 20:], table[500])
    torch.testing.assert_close(out[2, 20:], table[1000])
    assert enc(torch.tensor([[0.2504, 0.0, 0.0]])).reshape(3, 276)[0, 20:].equal(table[250])
    assert count_parameters(enc) == 256_256


# --- minibatch stddev ----------------------------------------------------------------------------------------------

def test_minibatch_std_groups_are_strided_like_stylegan2():
    torch.manual_seed(1)
    x = torch.randn(8, 6, 4, 4)
    out = MinibatchStdLayer(group_size=4, num_channels=1)(x)
    assert out.shape == (8, 7, 4, 4)
    assert out[:, :6].equal(x)
    std_map = out[:, 6]
    for m in range(2):  # M = 8 / 4 = 2 groups: {0, 2, 4, 6} and {1, 3, 5, 7}
        members = x[m::2]  # [4, 6, 4, 4]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for n in range(m, 8, 2):
            torch.testing.assert_close(std_map[n], torch.full((4, 4), expected.item()))
    # Shuffling samples inside a group leaves the statistic unchanged; swapping across groups changes it.
    within = x[[4, 1, 0, 3, 2, 5, 6, 7]]
    torch.testing.assert_close(MinibatchStdLayer(4, 1)(within)[:, 6].mean(), std_map.mean())
    assert MinibatchStdLayer(4, 1)(torch.zeros(4, 3, 2, 2))[:, 3].max() < 1e-3  # sqrt(1e-8)


def test_minibatch_std_group_capped_at_batch_and_two_channels():
    x = torch.randn(2, 4, 2, 2)
    out = MinibatchStdLayer(group_size=4, num_channels=2)(x)
    assert out.shape == (2, 6, 2, 2)
    half = x.reshape(2, 2, 2, 2, 2)  # [B, F, c, H, W]
    expected = (half.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])  # [F]
    torch.testing.assert_close(out[0, 4:, 0, 0], expected)
    torch.testing.assert_close(out[1, 4:, 1, 1], expected)


def test_minibatch_std_with_parts_equals_separate_calls():
    """parts=2 (Dmain's fakes and reals in one call): each half keeps its own groups, as two calls would."""
    torch.manual_seed(4)
    layer = MinibatchStdLayer(group_size=4, num_channels=2)
    a, b = torch.randn(8, 6, 4, 4), torch.randn(8, 6, 4, 4) * 3 + 1
    both = layer(torch.cat([a, b]), parts=2)
    torch.testing.assert_close(both, torch.cat([layer(a), layer(b)]), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(both, layer(torch.cat([a, b])))  # one batch of 16 groups across the halves
    with pytest.raises(ValueError, match="per-device batch \\(6\\)"):
        layer(torch.randn(12, 6, 4, 4), parts=2)


def test_discriminator_parts_and_kd_rows_equal_separate_calls():
    torch.manual_seed(5)
    D = Discriminator(img_resolution=32, patch_resolution=16, cbase=256, cmax=16, hyper_mod_dim=8,
                      patch_const_emb_dim=4, kd_dim=6)
    img = torch.randn(16, 4, 16, 16)
    patch = torch.rand(16, 3)
    fakes = D(img[:8], None, patch[:8], predict_feat=False)
    reals = D(img[8:], None, patch[8:], predict_feat=True)
    both = D(img, None, patch, predict_feat=True, parts=2, kd_rows=slice(8, None))
    torch.testing.assert_close(both["logits"], torch.cat([fakes["logits"], reals["logits"]]), rtol=1e-5, atol=1e-6)
    assert both["kd_features"].shape == (8, 6)
    torch.testing.assert_close(both["kd_features"], reals["kd_features"], rtol=1e-5, atol=1e-6)


# --- ref §4.2: hyper-modulation ------------------------------------------------------------------------------------

def _block_pair():
    torch.manual_seed(2)
    mod = DiscriminatorBlock(in_channels=8, tmp_channels=8, out_channels=16, down=2, hyper_mod_dim=12)
    plain = DiscriminatorBlock(in_channels=8, tmp_channels=8, out_channels=16, down=2, hyper_mod_dim=0)
    plain.load_state_dict({k: v for k, v in mod.state_dict().items() if not k.startswith("affine.")})
    return mod, plain


def test_hyper_modulation_with_zero_code_is_identity():
    mod, plain = _block_pair()
    assert plain.affine is None and count_parameters(mod) - count_parameters(plain) == 12 * 8 + 8
    x = torch.randn(2, 8, 8, 8)
    img = torch.empty(2, 4, 8, 8)
    ref = plain(x, img)
    torch.testing.assert_close(mod(x, img, torch.zeros(2, 12)), ref)  # affine(0) = bias = 0 -> scale 1
    assert not torch.allclose(mod(x, img, torch.randn(2, 12)), ref)
    assert ref.shape == (2, 16, 4, 4)


def test_hyper_modulation_scales_conv1_input_by_one_plus_tanh():
    mod, _ = _block_pair()
    h = torch.randn(2, 12)
    x = torch.randn(2, 8, 8, 8)
    seen = {}
    mod.conv1.register_forward_pre_hook(lambda m, args: seen.setdefault("in", args[0]))
    mod(x, torch.empty(2, 4, 8, 8), h)
    style = 1 + torch.tanh(mod.affine(h))
    torch.testing.assert_close(seen["in"], mod.conv0(x) * style[:, :, None, None])
    assert 0 < style.min() and style.max() < 2


# --- mixed precision (ref §4.1) --------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_fp16_blocks_on_cuda_match_fp32():
    torch.manual_seed(3)
    D = Discriminator(cbase=4096, cmax=64, hyper_mod_dim=64, kd_dim=16).cuda()
    img = torch.randn(4, 4, 64, 64, device="cuda")
    patch = torch.rand(4, 3, device="cuda")
    seen = []
    D.blocks["b32"].conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    D.blocks["b16"].conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    mixed = D(img, None, patch)
    assert seen == [torch.float16, torch.float32]
    full = D(img, None, patch, force_fp32=True)
    assert mixed["logits"].dtype == torch.float32 and mixed["kd_features"].dtype == torch.float32
    torch.testing.assert_close(mixed["logits"], full["logits"], atol=5e-2, rtol=5e-2)


# --- spec review: no w_avg in D, KD head only when asked, scalar-encoder table size --------------------------------

def test_discriminator_mappings_register_no_w_avg():
    D = small_dogs_like()
    assert not [k for k in D.state_dict() if "w_avg" in k]
    assert D.hyper_mod_mapping.w_avg_beta is None and D.head_mapping.w_avg_beta is None
    img, patch = torch.randn(4, 4, 64, 64), torch.rand(4, 3)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    D(img, None, patch)
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())


def test_kd_head_runs_only_when_predict_feat():
    """predict_feat=False (fakes, R1) skips the KD head entirely; the logits do not depend on it (ref §4.3)."""
    D = small_dogs_like()
    calls = []
    D.epilogue.kd_fc.register_forward_hook(lambda m, i, o: calls.append(1))
    img, patch = torch.randn(4, 4, 64, 64), torch.rand(4, 3)
    with_feat = D(img, None, patch)
    assert with_feat["kd_features"].shape == (4, 2048) and len(calls) == 1  # default True: today's behaviour
    without = D(img, None, patch, predict_feat=False)
    assert without["kd_features"] is None and len(calls) == 1
    torch.testing.assert_close(without["logits"], with_feat["logits"])
    logits, kd = D.epilogue(torch.randn(4, 16, 4, 4), torch.randn(4, 16), predict_feat=False)
    assert kd is None and logits.shape == (4,) and len(calls) == 1


@pytest.mark.parametrize("multiplier, rows", [(10.4, 12), (10.6, 12), (1000, 1001), (2.01, 4)])
def test_scalar_encoder_table_uses_ceil(multiplier, rows):
    """Embedding(ceil(x_multiplier) + 1): 10.4 -> 12 rows (round would give 11)."""
    enc = ScalarEncoder1d(coord_dim=1, x_multiplier=multiplier, const_emb_dim=3)
    assert enc.num_embeddings == rows and enc.const_embed.weight.shape == (rows, 3)
    out = enc(torch.tensor([[1.0]]))[0, -3:]
    torch.testing.assert_close(out, enc.const_embed.weight[round(multiplier)])
