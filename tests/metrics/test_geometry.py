"""Geometry scores: multi-view consistency, depth realism, camera posterior statistics (stages.metrics.geometry)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.metrics.geometry import camera_posterior_stats, depth_realism, multiview_consistency, \
    normalize_depth_maps, warp_view
from stages.nn.camera_prior import CameraPrior
from stages.nn.inputs import make_generator, sample_generator_inputs
from stages.nn.rays import CAM_FOV, CAM_LA_RADIUS, CAM_PITCH, CAM_YAW, CAMERA_FIELDS, make_rays
from tests.metrics.sphere_generator import RAY_END, ray_sphere_distance, sphere_color, sphere_generator

# ---------------------------------------------------------------------------------------------------------------
# Multi-view consistency


def _mvc(view_dependent: bool, n: int = 4):
    G = sphere_generator(textured=True, view_dependent=view_dependent)
    inputs = sample_generator_inputs(n, G.z_dim, G.c_dim, CameraPrior(), generator=make_generator(0))
    return multiview_consistency(G, inputs, yaw_delta=0.15, generator=make_generator(1))


@pytest.fixture(scope="module")
def mvc_results():
    return _mvc(view_dependent=False), _mvc(view_dependent=True)


def test_consistent_sphere_scores_near_zero(mvc_results):
    consistent, _ = mvc_results
    assert consistent.errors.shape == consistent.covisible.shape == (4,)
    assert consistent.mean_error < 0.01  # measured 0.0058 (depth bias, resampling, renderer jitter)
    assert float(consistent.errors.max()) < 0.015
    assert float(consistent.covisible.min()) > 0.2  # the sphere covers a sizeable part of every view


def test_view_dependent_texture_scores_clearly_worse(mvc_results):
    consistent, faked = mvc_results
    assert faked.mean_error > 0.05  # measured 0.069
    assert faked.mean_error > 5 * consistent.mean_error
    assert bool((faked.errors > 3 * consistent.errors).all())
    torch.testing.assert_close(faked.covisible, consistent.covisible)  # same geometry, same co-visible pixels


def test_parallax_ratio_separates_geometry_from_a_billboard(mvc_results):
    # The sphere's own depth explains the view change far better than a billboard at its median depth; for the
    # view-dependent (2-D) texture neither depth helps, so the ratio is near 1.
    consistent, faked = mvc_results
    assert consistent.flat_errors.shape == (4,)
    assert bool((consistent.flat_errors > 1.3 * consistent.errors).all())  # measured 1.4x to 17x
    assert consistent.parallax_ratio < 0.5
    assert faked.parallax_ratio > 0.8


def test_parallax_ratio_of_a_random_generator_is_near_one():
    # A smooth random radiance field (any generator at initialisation) has no geometry to explain parallax.
    from stages.nn.build import build_generator
    from stages.nn.config import get_preset

    torch.manual_seed(0)
    G = build_generator(get_preset("tiny")).eval()
    inputs = sample_generator_inputs(8, G.z_dim, G.c_dim, CameraPrior(), generator=make_generator(0))
    result = multiview_consistency(G, inputs, generator=make_generator(1))
    assert 0.9 < result.parallax_ratio < 1.1


def _frontal_cameras(n: int, fov: float = 30.0, yaw: float = 0.0) -> torch.Tensor:
    camera = CameraPrior().mean_camera().repeat(n, 1)  # [n, 8]
    camera[:, CAM_YAW], camera[:, CAM_FOV], camera[:, CAM_LA_RADIUS] = yaw, fov, 0.0  # look at the origin
    return camera


def test_rendered_depth_is_the_ray_sphere_distance():
    G = sphere_generator()
    camera = _frontal_cameras(4, yaw=0.3)
    camera[:, CAM_PITCH] = torch.tensor([1.2, 1.4, 1.6, 1.8])
    with torch.no_grad():  # an odd resolution has a centre pixel
        planes = G.triplanes(G.mapping(torch.randn(4, G.z_dim), None), noise_mode="const")
        img, depth = G.render(planes, camera, resolution=33, generator=make_generator(0))
    origins, dirs = make_rays(camera, 33)  # [4, 33*33, 3]
    analytic = ray_sphere_distance(origins, dirs, 0.25).view(4, 1, 33, 33)
    centre = depth[:, 0, 16, 16]
    torch.testing.assert_close(analytic[:, 0, 16, 16], torch.full((4,), 0.75))  # the ray through the centre
    # Importance-sampling bias: the first sample past the surface, at most ~one coarse spacing (0.026) behind it.
    assert float(centre.min()) > 0.75 - 1e-3 and float(centre.max()) < 0.75 + 0.03  # measured +0.004 .. +0.016
    hit = torch.isfinite(analytic)
    assert float((depth[hit] - analytic[hit]).abs().mean()) < 0.015  # measured 0.008
    assert float((depth[~hit] - RAY_END).abs().max()) < 0.02  # background: the opaque last sample
    torch.testing.assert_close(((img[:, :, 16, 16] + 1) / 2), torch.tensor([0.8, 0.2, 0.2]).expand(4, 3))


def test_identity_warp_with_identical_cameras():
    gen = make_generator(3)
    camera = CameraPrior().sample(2, generator=gen)
    image = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    depth = 0.8 + 0.3 * torch.rand(2, 1, 16, 16, generator=gen)
    warped, covisible = warp_view(image, depth, depth, camera, camera, tolerance=0.01, far=1.25)
    assert bool(covisible.all())
    assert float((warped - image).abs().max()) < 1e-6
    background = depth.clone()
    background[:, :, :4] = 1.25  # the far bound: never co-visible
    _, covisible = warp_view(image, background, background, camera, camera, tolerance=0.01, far=1.25)
    assert not bool(covisible[:, :, :4].any()) and bool(covisible[:, :, 4:].all())


def _analytic_view(camera: torch.Tensor, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact image [B, 3, H, W] and depth [B, 1, H, W] of the textured sphere (background at the far bound)."""
    origins, dirs = make_rays(camera.double(), res)  # [B, R, 3]
    t = ray_sphere_distance(origins, dirs, 0.25)  # [B, R]
    t = torch.where(torch.isfinite(t), t, torch.full_like(t, RAY_END))
    image = sphere_color(origins + dirs * t.unsqueeze(-1), (0.8, 0.2, 0.2), textured=True)  # [B, R, 3]
    return image.transpose(1, 2).reshape(-1, 3, res, res), t.view(-1, 1, res, res)


def test_warp_geometry_on_an_analytic_sphere():
    camera_a = _frontal_cameras(2, fov=35.0)
    camera_a[:, CAM_PITCH] = torch.tensor([1.4, 1.7])
    camera_b = camera_a.clone()
    camera_b[:, CAM_YAW] += 0.2
    image_a, depth_a = _analytic_view(camera_a, 64)
    image_b, depth_b = _analytic_view(camera_b, 64)
    warped, covisible = warp_view(image_b, depth_b, depth_a, camera_a, camera_b, tolerance=0.01, far=RAY_END)
    fraction = covisible.double().mean()
    assert 0.2 < float(fraction) < float((depth_a < RAY_END).double().mean())  # some sphere pixels are occluded
    error = ((warped - image_a).abs() / 2).mean(1, keepdim=True)[covisible]
    assert float(error.mean()) < 0.005  # exact depth: bilinear resampling error only
    flipped, _ = warp_view(image_b.flip(-2), depth_b.flip(-2), depth_a, camera_a, camera_b, tolerance=0.01,
                           far=RAY_END)  # a wrong row convention must show
    assert float(((flipped - image_a).abs() / 2).mean(1, keepdim=True)[covisible].mean()) > 10 * float(error.mean())


# ---------------------------------------------------------------------------------------------------------------
# Depth realism


def _structured_depth(n: int, seed: int, res: int = 32) -> torch.Tensor:
    """[n, 1, res, res] scenes: a ground-plane gradient and a disc-shaped object at a random place and size."""
    gen = make_generator(seed)
    line = torch.linspace(-1.0, 1.0, res)
    y, x = line.view(1, res, 1), line.view(1, 1, res)
    cx, cy = (torch.rand(2, n, 1, 1, generator=gen) - 0.5)
    radius = 0.3 + 0.4 * torch.rand(n, 1, 1, generator=gen)
    background = 0.5 - 0.4 * y.expand(n, res, res)  # farther towards the top
    bump = (1 - ((x - cx) ** 2 + (y - cy) ** 2) / radius ** 2).clamp(min=0).sqrt()  # [n, res, res]
    return torch.where(bump > 0, 0.1 - 0.3 * bump, background).unsqueeze(1)


def test_normalize_depth_maps():
    depth = _structured_depth(3, seed=0)
    depth[2] = 0.7  # constant map
    norm = normalize_depth_maps(depth)
    assert norm.shape == depth.shape and float(norm.min()) == 0.0 and float(norm[:2].max()) == 1.0
    assert bool((norm[2] == 0.5).all())
    torch.testing.assert_close(normalize_depth_maps(3.0 * depth - 2.0), norm, atol=1e-5, rtol=0)


def test_depth_realism_separates_flat_from_structured():
    real = _structured_depth(64, seed=1)
    same = depth_realism(real, real)
    structured = depth_realism(_structured_depth(64, seed=2), real)
    flat = depth_realism(torch.full((64, 1, 32, 32), 1.0) + 1e-9 * torch.rand(64, 1, 32, 32), real)
    assert same < 1e-6
    assert structured < 0.03  # measured 0.0068
    assert flat > 0.15 and flat > 5 * structured  # measured 0.26
    fake = _structured_depth(64, seed=2)
    assert depth_realism(0.25 * fake + 1.0, real) == pytest.approx(structured, abs=1e-5)  # affine invariance
    upsampled = torch.nn.functional.interpolate(real, size=(64, 64), mode="bilinear", align_corners=False)
    assert depth_realism(fake, upsampled) == pytest.approx(structured, abs=0.01)  # reals resized to the fakes


# ---------------------------------------------------------------------------------------------------------------
# Camera posterior statistics


def test_camera_stats_keys_and_spread():
    prior = CameraPrior()
    samples = prior.sample(4096, generator=make_generator(0))
    reference = prior.sample(4096, generator=make_generator(1))
    stats = camera_posterior_stats(samples, reference)
    for field in ("yaw", "pitch", "fov_deg", "la_yaw", "la_pitch", "la_radius"):
        assert field in CAMERA_FIELDS
        for suffix in ("mean", "std", "prior_mean", "prior_std"):
            assert math.isfinite(stats[f"{field}/{suffix}"])
    assert stats["spread"] == pytest.approx(1.0, abs=0.03)
    assert stats["yaw/prior_std"] == pytest.approx(3.14 / math.sqrt(12), rel=0.03)  # U[-1.57, 1.57]
    assert stats["fov_deg/mean"] == pytest.approx(27.5, abs=0.5)
    assert camera_posterior_stats(reference, reference)["spread"] == pytest.approx(1.0, abs=1e-12)


def test_collapsed_posterior_has_zero_spread():
    reference = CameraPrior().sample(512, generator=make_generator(1))
    collapsed = reference[:1].repeat(512, 1)  # every sample the same camera
    stats = camera_posterior_stats(collapsed, reference)
    assert stats["spread"] == pytest.approx(0.0, abs=1e-9)
    assert stats["yaw/mean"] == pytest.approx(float(reference[0, CAM_YAW]))
    half = reference.clone()
    half[:, CAM_YAW] *= 0.5  # yaw half as spread, pitch and FoV untouched: (0.5 + 1 + 1) / 3
    assert camera_posterior_stats(half, reference)["spread"] == pytest.approx(2.5 / 3, abs=1e-9)
