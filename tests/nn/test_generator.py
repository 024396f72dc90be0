"""Tri-plane sampling + MLP and the assembled generator (3DGP ref §1.3, §1.8, §14)."""
from __future__ import annotations

import time

import pytest
import torch

from stages.nn.camera_adaptor import CameraAdaptor
from stages.nn.camera_prior import CameraPrior
from stages.nn.depth_adaptor import DepthAdaptor
from stages.nn.generator import Generator
from stages.nn.triplane import TriPlaneMLP, query_triplane, sample_triplane

# ---------------------------------------------------------------------------------------------------------------
# Tri-plane sampling (ref §1.3)


def _pattern_planes(plane: int, res: int = 5) -> torch.Tensor:
    """[1, 3, 1, R, R] with value col + 10 * row on ``plane`` and zeros elsewhere."""
    rows = torch.arange(res, dtype=torch.float32).view(res, 1)
    cols = torch.arange(res, dtype=torch.float32).view(1, res)
    planes = torch.zeros(1, 3, 1, res, res)
    planes[0, plane, 0] = cols + 10 * rows
    return planes


@pytest.mark.parametrize("plane, expected", [(0, 3.0 + 10 * 0.0), (1, 3.0 + 10 * 2.4), (2, 0.0 + 10 * 2.4)])
def test_plane_axis_assignment_golden(plane, expected):
    # cube_scale 0.5, R = 5, align_corners: texel index = (p / 0.5 + 1) / 2 * 4.
    # Point (0.25, -0.5, 0.1): x -> 3, y -> 0, z -> 2.4.
    # plane 0 = (x width, y height), plane 1 = (x, z), plane 2 = (y, z); the mean over 3 planes divides by 3.
    point = torch.tensor([[[0.25, -0.5, 0.1]]])
    feats = sample_triplane(_pattern_planes(plane), point, cube_scale=0.5)
    assert feats.shape == (1, 1, 1)
    torch.testing.assert_close(feats[0, 0, 0], torch.tensor(expected / 3.0))


def test_texel_centres_and_bilinear_midpoint():
    planes = torch.zeros(1, 3, 1, 2, 2)
    planes[0, 0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    corners = torch.tensor([[[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    feats = sample_triplane(planes, corners, cube_scale=0.5)[0, :, 0] * 3  # undo the plane mean
    torch.testing.assert_close(feats, torch.tensor([1.0, 2.0, 3.0, 2.5]))  # corners are texel centres


def test_points_outside_the_cube_get_zero_features():
    planes = torch.randn(2, 3, 4, 8, 8)
    points = torch.tensor([[0.9, 0.9, -0.9], [0.0, 0.0, 0.0]]).expand(2, 2, 3)
    feats = sample_triplane(planes, points, cube_scale=0.5)
    assert feats.shape == (2, 2, 4)
    torch.testing.assert_close(feats[:, 0], torch.zeros(2, 4))
    assert feats[:, 1].abs().sum() > 0
    # Only plane 2 (y, z) covers (0.9, 0, 0): the x-planes read zeros there.
    only_yz = sample_triplane(planes, torch.tensor([[[0.9, 0.0, 0.0]]]).expand(2, 1, 3), cube_scale=0.5)
    yz = sample_triplane(planes * torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1, 1),
                         torch.tensor([[[0.0, 0.0, 0.0]]]).expand(2, 1, 3), cube_scale=0.5)
    torch.testing.assert_close(only_yz, yz)


def test_mlp_counts_and_constant_output_outside():
    assert sum(p.numel() for p in TriPlaneMLP(32).parameters()) == 2_372
    assert sum(p.numel() for p in TriPlaneMLP(16).parameters()) == 1_348
    torch.manual_seed(0)
    mlp = TriPlaneMLP(4)
    with torch.no_grad():
        for layer in mlp.layers:
            layer.bias.normal_()
    planes = torch.randn(1, 3, 4, 8, 8)
    rgb, sigma = query_triplane(planes, mlp, torch.tensor([[[2.0, 2.0, 2.0], [-3.0, 1.0, 5.0]]]))
    assert rgb.shape == (1, 2, 3) and sigma.shape == (1, 2)
    expected = mlp(torch.zeros(1, 1, 4))[0, 0]
    torch.testing.assert_close(rgb[0], expected[:3].expand(2, 3))
    torch.testing.assert_close(sigma[0], expected[3].expand(2))


# ---------------------------------------------------------------------------------------------------------------
# Generator (ref §1.8, §14)

def _full_generator(c_dim: int, cbase: int, cmax: int) -> Generator:
    return Generator(
        c_dim=c_dim, cbase=cbase, cmax=cmax,
        camera_adaptor=CameraAdaptor(c_dim=c_dim, z_dim=512),
        depth_adaptor=DepthAdaptor(),
    )


@pytest.mark.parametrize("c_dim, cbase, cmax, total", [(0, 32768, 512, 29_339_693), (1000, 65536, 1024, 105_721_805)])
def test_generator_total_params_match_reference(c_dim, cbase, cmax, total):
    with torch.device("meta"):
        G = _full_generator(c_dim, cbase, cmax)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert G.num_ws == 16
    assert count(G.mapping) == (525_312 if c_dim == 0 else 1_299_968)
    assert count(G.mlp) == 2_372
    assert count(G) == total


def test_small_generator_params():
    with torch.device("meta"):
        G = Generator(tri_plane_res=128, feat_dim=16, cbase=4096, cmax=128,
                      camera_adaptor=CameraAdaptor(c_dim=0), depth_adaptor=DepthAdaptor())
    assert G.num_ws == 12
    assert sum(p.numel() for p in G.backbone.parameters()) == 2_122_347
    assert sum(p.numel() for p in G.parameters()) == 3_005_193


def _tiny_generator(c_dim: int = 0) -> Generator:
    return Generator(
        z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=8, tri_plane_res=16, feat_dim=4, cbase=256,
        cmax=16, mlp_hid_dim=16, num_coarse_steps=6, num_fine_steps=6,
        camera_adaptor=CameraAdaptor(c_dim=c_dim, z_dim=16, hid_dim=16, embed_dim=4),
        depth_adaptor=DepthAdaptor(hid_dim=8),
    )


def test_tiny_forward_backward_on_cpu():
    torch.manual_seed(0)
    G = _tiny_generator(c_dim=3).train()
    z = torch.randn(4, 16)
    c = torch.eye(3)[[0, 1, 2, 0]]
    prior = CameraPrior().sample(4, generator=torch.Generator().manual_seed(0))
    patch = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.25, 0.5]]).repeat(2, 1)
    start = time.perf_counter()
    out = G(z, c, prior, patch_params=patch, resolution=8, nerf_noise_std=1.0, update_emas=True)
    assert out["img"].shape == (4, 3, 8, 8) and out["depth"].shape == (4, 1, 8, 8)
    assert out["depth_adapted"].shape == (4, 1, 8, 8) and out["camera"].shape == (4, 8)
    assert out["ws"].shape == (4, G.num_ws, 16)
    assert torch.isfinite(out["img"]).all()
    # Depth is a convex-ish combination of sample depths in [ray_start, ray_end] (last sample opaque).
    assert out["depth"].min() >= 0.75 - 1e-4 and out["depth"].max() <= 1.25 + 1e-4
    loss = out["img"].square().mean() + out["depth_adapted"].mean() + out["depth"].mean()
    loss.backward()
    assert time.perf_counter() - start < 10.0
    for name in ("mapping", "backbone", "mlp", "camera_adaptor"):
        grads = [p.grad for p in getattr(G, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    assert G.depth_adaptor.near_plane_offset_raw.grad is not None
    assert G.mapping.w_avg.abs().sum() > 0  # update_emas=True moved w_avg


def test_eval_with_const_noise_is_deterministic_up_to_renderer_rng():
    torch.manual_seed(0)
    G = _tiny_generator().eval()
    z = torch.randn(2, 16)
    camera = CameraPrior().mean_camera().expand(2, 8)
    ws = G.mapping(z, None, truncation_psi=0.7)
    with torch.no_grad():
        a = G.synthesis(ws, camera, noise_mode="const", generator=torch.Generator().manual_seed(1))
        b = G.synthesis(ws, camera, noise_mode="const", generator=torch.Generator().manual_seed(1))
    assert a["img"].shape == (2, 3, 8, 8)  # default resolution = img_resolution
    torch.testing.assert_close(a["img"], b["img"])
    torch.testing.assert_close(a["depth_adapted"], b["depth_adapted"])


def test_without_adaptors_the_prior_camera_is_used():
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=4, tri_plane_res=8, feat_dim=2, cbase=64, cmax=8,
                  mlp_hid_dim=8, num_coarse_steps=4, num_fine_steps=4)
    prior = CameraPrior().sample(2)
    out = G(torch.randn(2, 8), torch.zeros(2, 0), prior)
    assert out["depth_adapted"] is None
    torch.testing.assert_close(out["camera"], prior)
    planes = G.triplanes(out["ws"], noise_mode="const")
    assert planes.shape == (2, 3, 2, 8, 8)
    rgb, sigma = G.decode_points(planes, torch.zeros(2, 5, 3))
    assert rgb.shape == (2, 5, 3) and sigma.shape == (2, 5)


# ---------------------------------------------------------------------------------------------------------------
# Determinism with an explicit torch.Generator, and the eval-mode density noise (spec review fixes)

def _noisy_tiny_generator() -> Generator:
    """The tiny G in training mode with non-zero noise strengths (they init to 0, which would hide the noise)."""
    torch.manual_seed(0)
    G = _tiny_generator().train()
    with torch.no_grad():
        for name, param in G.backbone.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    return G


def _g_inputs(batch: int = 8):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, 16, generator=gen)
    prior = CameraPrior().sample(batch, generator=gen)
    patch = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.25, 0.5]]).repeat(batch // 2, 1)
    return z, prior, patch


def test_equal_seeded_generators_give_identical_outputs_despite_global_rng():
    """Synthesis noise, renderer and depth-adaptor selection all follow ``generator`` (training mode)."""
    G = _noisy_tiny_generator()
    z, prior, patch = _g_inputs()
    kwargs = dict(patch_params=patch, resolution=8, noise_mode="random", nerf_noise_std=1.0)
    with torch.no_grad():
        torch.manual_seed(123)
        a = G(z, None, prior, generator=torch.Generator().manual_seed(5), **kwargs)
        torch.manual_seed(456)
        torch.rand(1000)  # perturb the global stream further
        b = G(z, None, prior, generator=torch.Generator().manual_seed(5), **kwargs)
        c = G(z, None, prior, generator=torch.Generator().manual_seed(6), **kwargs)
    for key in ("img", "depth", "depth_adapted"):
        assert torch.equal(a[key], b[key]), key
        assert not torch.equal(a[key], c[key]), key  # the seed matters, so the check above can fail


def test_generator_reaches_the_synthesis_noise_and_the_depth_adaptor():
    G = _noisy_tiny_generator()
    z, prior, _ = _g_inputs()
    with torch.no_grad():
        ws = G.mapping(z, None)
        planes = [G.triplanes(ws, "random", generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
        assert torch.equal(planes[0], planes[1]) and not torch.equal(planes[0], planes[2])
        G.depth_adaptor.set_progress(0.0)  # uniform selection over 4 candidates
        depth = 0.75 + 0.5 * torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        outs = [G.depth_adaptor(depth, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
        assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_density_noise_is_off_in_eval_mode():
    """``nerf_noise_std if self.training else 0`` (official): eval ignores the std, training applies it."""
    G = _noisy_tiny_generator()
    z, prior, _ = _g_inputs(batch=2)
    renders = {}
    with torch.no_grad():
        ws = G.mapping(z, None)
        planes = G.triplanes(ws, "const")
        for training in (False, True):
            G.train(training)
            for std in (0.0, 5.0):
                img, depth = G.render(planes, prior, nerf_noise_std=std, generator=torch.Generator().manual_seed(3))
                renders[training, std] = torch.cat([img, depth], dim=1)
    assert torch.equal(renders[False, 0.0], renders[False, 5.0])
    assert not torch.allclose(renders[True, 0.0], renders[True, 5.0])
    assert torch.equal(renders[False, 0.0], renders[True, 0.0])
