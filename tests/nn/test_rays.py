"""Camera geometry and ray casting (3DGP ref §1.4)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn.rays import camera_to_world, make_rays, pixel_ndc, spherical_to_cartesian


def _camera(yaw=0.0, pitch=math.pi / 2, fov=30.0, radius=1.0, la=(0.0, math.pi / 2, 0.0), dtype=torch.float64):
    return torch.tensor([[yaw, pitch, 0.0, fov, radius, *la]], dtype=dtype)  # [1, 8]


def test_spherical_convention_axes():
    # yaw 0, pitch pi/2 -> +z; pitch 0 -> +y; yaw pi/2 (pitch pi/2) -> -x (x = r sin p sin(-yaw)).
    pts = spherical_to_cartesian(
        torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64),
        torch.tensor([math.pi / 2, 0.0, math.pi / 2], dtype=torch.float64),
        torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64),
    )
    expected = torch.tensor([[0, 0, 2.0], [0, 1.0, 0], [-1.0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(pts, expected, atol=1e-12, rtol=0)


def test_frontal_camera_sits_on_plus_z_looking_at_origin():
    c2w = camera_to_world(_camera())[0]  # [4, 4]
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.0], [0, 0, 0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(c2w, expected, atol=1e-12, rtol=0)


def test_camera_to_world_is_rigid_and_looks_at_target():
    cam = _camera(yaw=0.7, pitch=1.1, radius=1.3, la=(0.4, 2.0, 0.15))
    c2w = camera_to_world(cam)[0]
    rot = c2w[:3, :3]
    torch.testing.assert_close(rot.T @ rot, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.det(rot).item() == pytest.approx(1.0, abs=1e-12)
    target = spherical_to_cartesian(*[torch.tensor(v, dtype=torch.float64) for v in (0.4, 2.0, 0.15)])
    forward = torch.nn.functional.normalize(target - c2w[:3, 3], dim=0)
    torch.testing.assert_close(-rot[:, 2], forward, atol=1e-12, rtol=0)  # camera looks down -z
    assert abs(rot[1, 0].item()) < 1e-12  # no roll: the camera x axis stays horizontal


def test_centre_ray_hits_the_look_at_point():
    cam = _camera(yaw=-0.5, pitch=1.2, fov=20.0, la=(1.0, 1.0, 0.1))
    origins, dirs = make_rays(cam, resolution=5)  # odd: a pixel sits exactly at the centre
    target = spherical_to_cartesian(*[torch.tensor(v, dtype=torch.float64) for v in (1.0, 1.0, 0.1)])
    distance = torch.linalg.vector_norm(target - origins[0, 12])
    torch.testing.assert_close(origins[0, 12] + distance * dirs[0, 12], target, atol=1e-12, rtol=0)


def test_extreme_rays_span_exactly_the_fov():
    fov = 37.0
    _, dirs = make_rays(_camera(fov=fov), resolution=7)
    grid = dirs[0].view(7, 7, 3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(1, 49, dtype=torch.float64))
    for a, b in [(grid[3, 0], grid[3, 6]), (grid[0, 3], grid[6, 3])]:
        angle = math.degrees(math.acos(torch.dot(a, b).item()))
        assert angle == pytest.approx(fov, abs=1e-9)
    # row 0 is the top (+y), column 0 the left (-x) for the frontal camera
    assert grid[0, 3, 1] > 0 and grid[6, 3, 1] < 0 and grid[3, 0, 0] < 0 and grid[3, 6, 0] > 0


def test_patch_rays_at_full_scale_equal_full_rays():
    cam = torch.cat([_camera(yaw=0.3), _camera(pitch=1.0, fov=12.0)])
    full = make_rays(cam, resolution=8)
    patch = make_rays(cam, resolution=8, patch_params=torch.tensor([[1.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64))
    for a, b in zip(full, patch):
        torch.testing.assert_close(a, b, atol=1e-15, rtol=0)  # (u + 1) * 1 - 1 rounds


def test_patch_ndc_covers_bottom_left_quarter():
    params = torch.tensor([[0.5, 0.0, 0.0]])
    u, v = pixel_ndc(3, params, 1)
    torch.testing.assert_close(u[0, 0], torch.tensor([-1.0, -0.5, 0.0]))
    torch.testing.assert_close(v[0, :, 0], torch.tensor([0.0, -0.5, -1.0]))  # o_y counts from the bottom


def test_make_rays_is_differentiable_in_camera():
    cam = _camera(yaw=0.2, la=(0.1, 1.4, 0.1)).requires_grad_(True)
    origins, dirs = make_rays(cam, resolution=4)
    (origins.sum() + dirs[..., 0].sum()).backward()
    assert torch.isfinite(cam.grad).all() and cam.grad[0, 0] != 0 and cam.grad[0, 3] != 0


def test_patch_rays_match_the_same_pixels_as_extract_patches():
    # a half-scale patch at o = (0.5, 0) covers the bottom-right quarter: rows 4..8, cols 4..8 of a 9x9 image,
    # exactly the pixels extract_patches takes for the same parameters (fake and real patches agree)
    cam = _camera(yaw=0.4, fov=40.0)
    _, full = make_rays(cam, resolution=9)
    _, patch = make_rays(cam, resolution=5, patch_params=torch.tensor([[0.5, 0.5, 0.0]]))  # float32 params
    torch.testing.assert_close(patch.view(5, 5, 3), full.view(9, 9, 3)[4:, 4:], atol=1e-7, rtol=0)
