"""Patch-parameter sampling and real-patch extraction (3DGP ref §1.7, §13)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.nn.patches import extract_patches, sample_patch_params


def test_patch_params_lie_in_range_and_groups_share_them():
    params = sample_patch_params(10, min_scale=0.25, beta=0.8, generator=torch.Generator().manual_seed(0))
    assert params.shape == (10, 3) and params.dtype == torch.float32
    scale, offsets = params[:, 0], params[:, 1:]
    assert bool(((scale >= 0.25) & (scale <= 1.0)).all())
    assert bool(((offsets >= 0) & (offsets <= (1 - scale).unsqueeze(1) + 1e-7)).all())
    for start in (0, 4, 8):  # groups of 4 (the last one truncated to 2)
        group = params[start:start + 4]
        torch.testing.assert_close(group, group[:1].expand_as(group), atol=0, rtol=0)
    assert not torch.equal(params[0], params[4])


def test_beta_schedule_endpoints():
    gen = torch.Generator().manual_seed(1)
    early = sample_patch_params(4000, 0.25, beta=0.001, group_size=1, generator=gen)
    # Beta(1, 0.001): whole images at the start (P(s < 0.99) = 1 - 0.0133^0.001 ~ 0.4 %)
    assert (early[:, 0] > 0.99).float().mean().item() > 0.99
    late = sample_patch_params(20000, 0.25, beta=0.8, group_size=1, generator=gen)
    assert late[:, 0].mean().item() == pytest.approx(0.25 + 0.75 / 1.8, abs=0.01)  # E[s] ~ 0.67
    off = late[:, 1] / (1 - late[:, 0]).clamp(min=1e-6)
    assert off[late[:, 0] < 0.9].mean().item() == pytest.approx(0.5, abs=0.02)  # uniform offsets


def test_patch_sampling_is_seeded_and_validated():
    a = sample_patch_params(8, 0.25, 0.5, generator=torch.Generator().manual_seed(3))
    b = sample_patch_params(8, 0.25, 0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="patch_beta"):
        sample_patch_params(8, 0.25, 0.0)
    with pytest.raises(ValueError, match="patch_min_scale"):
        sample_patch_params(8, 1.5, 0.5)


def test_full_scale_patch_is_a_plain_bilinear_downsample():
    gen = torch.Generator().manual_seed(4)
    images = torch.randn(2, 4, 16, 16, generator=gen)  # 4 channels: RGB + depth
    out = extract_patches(images, torch.tensor([[1.0, 0, 0]] * 2), 4)
    assert out.shape == (2, 4, 4, 4)
    expected = F.interpolate(images, size=(4, 4), mode="bilinear", align_corners=True)  # no anti-aliasing
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)  # float32 grid rounding only
    theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]] * 2)
    grid = F.affine_grid(theta, [2, 4, 4, 4], align_corners=True)
    torch.testing.assert_close(out, F.grid_sample(images, grid, align_corners=True), atol=1e-5, rtol=0)


def test_offsets_count_from_the_bottom_left():
    image = torch.arange(81.0).view(1, 1, 9, 9)
    bottom_left = extract_patches(image, torch.tensor([[0.5, 0.0, 0.0]]), 5)
    torch.testing.assert_close(bottom_left, image[..., 4:, :5], atol=1e-5, rtol=0)
    top_right = extract_patches(image, torch.tensor([[0.5, 0.5, 0.5]]), 5)
    torch.testing.assert_close(top_right, image[..., :5, 4:], atol=1e-5, rtol=0)


def test_extract_patches_is_differentiable():
    images = torch.randn(1, 4, 8, 8, requires_grad=True)
    extract_patches(images, torch.tensor([[0.6, 0.1, 0.3]]), 4).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_patch_groups_are_consecutive_not_the_strided_mbstd_groups():
    """Patch params are shared by 4 CONSECUTIVE samples, whereas the minibatch-std layer groups with a stride
    (sample n in group n mod (B / 4)). The official code has the same mismatch; this pins it (see module docstring).
    """
    from stages.nn.disc_blocks import MinibatchStdLayer

    params = sample_patch_params(8, min_scale=0.25, beta=0.8, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(params[0], params[i]) for i in range(4))  # 0..3 share one draw
    assert not torch.equal(params[0], params[4])
    # mbstd: with B = 8 and group 4, samples {0, 2, 4, 6} form one group (strided), not {0, 1, 2, 3}.
    x = torch.zeros(8, 1, 1, 1)
    x[[0, 2, 4, 6], 0] = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1)
    std = MinibatchStdLayer(group_size=4)(x)[:, 1, 0, 0]
    torch.testing.assert_close(std[[0, 2, 4, 6]], torch.full((4,), 1.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(std[[1, 3, 5, 7]], torch.zeros(4), atol=1e-3, rtol=0)
