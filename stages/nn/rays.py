"""Camera geometry and ray casting (3DGP ref §1.4, §2.1).

Conventions (all reproduced from the reference):

* A camera is 8 scalars ``[yaw, pitch, roll, fov_deg, radius, la_yaw, la_pitch, la_radius]`` (ref §2.1); the
  column indices are the ``CAM_*`` constants below. Roll is carried but ignored by the geometry.
* Spherical coordinates (``spherical_to_cartesian``): y is up, pitch is measured from +y, so pitch = pi/2 is the
  horizontal plane; at yaw 0 and pitch pi/2 a point sits on +z: x = r sin(p) sin(-y), y = r cos(p),
  z = r sin(p) cos(y).
* Camera-to-world (``camera_to_world``): a look-at matrix in the OpenGL convention. Rotation columns are
  (-left, up, -forward): the camera looks down its -z axis and its x axis points right. Translation = origin.
* Pixel grid (``pixel_ndc``): u runs from -1 (left column) to +1 (right column), v from +1 (top row) to -1 (bottom
  row); the extreme pixel centres lie exactly at +-1, and the FoV (degrees) is the full angle between them.
* Patches: with scale s and offsets (o_x, o_y) in [0, 1 - s], u' = (u + 1) s - 1 + 2 o_x and likewise for v with
  o_y, so o_y is measured from the BOTTOM of the image. ``stages.nn.patches.extract_patches`` uses the same grid.
* Rays are returned row-major: ray index = row * W + col, so ``[B, H*W, C] -> [B, H, W, C]`` is the image layout.
  Directions are unit length, hence depth along a ray is Euclidean distance from the camera.

Public API:
  spherical_to_cartesian(yaw, pitch, radius) -> [..., 3]
  camera_to_world(camera [B, 8]) -> [B, 4, 4]
  pixel_ndc(resolution, patch_params [B, 3] | None, batch_size, device, dtype) -> (u [B, H, W], v [B, H, W])
  make_rays(camera [B, 8], resolution, patch_params [B, 3] | None) -> (origins [B, H*W, 3], dirs [B, H*W, 3])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Column indices of the flattened 8-scalar camera (3DGP ref §2.1).
CAM_YAW, CAM_PITCH, CAM_ROLL, CAM_FOV, CAM_RADIUS, CAM_LA_YAW, CAM_LA_PITCH, CAM_LA_RADIUS = range(8)
CAMERA_DIM = 8
CAMERA_FIELDS = ("yaw", "pitch", "roll", "fov_deg", "radius", "la_yaw", "la_pitch", "la_radius")


def spherical_to_cartesian(yaw: torch.Tensor, pitch: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Map (yaw, pitch, radius) to xyz with y up and pitch measured from +y (3DGP ref §1.4).

    Inputs broadcast against each other; the output has one more trailing dimension of size 3.
    """
    sin_pitch = torch.sin(pitch)
    x = radius * sin_pitch * torch.sin(-yaw)
    y = radius * torch.cos(pitch)
    z = radius * sin_pitch * torch.cos(yaw)
    return torch.stack(torch.broadcast_tensors(x, y, z), dim=-1)  # [..., 3]


def camera_to_world(camera: torch.Tensor) -> torch.Tensor:
    """Look-at camera-to-world matrices in the OpenGL convention (3DGP ref §1.4).

    Args:
        camera: ``[B, 8]`` cameras (ref §2.1 layout). Roll and FoV are not used here.
    Returns:
        ``[B, 4, 4]``: rotation columns (-left, up, -forward), translation = camera origin, last row (0, 0, 0, 1).
    """
    assert camera.ndim == 2 and camera.shape[1] == CAMERA_DIM, f"camera must be [B, 8], got {list(camera.shape)}"
    origin = spherical_to_cartesian(camera[:, CAM_YAW], camera[:, CAM_PITCH], camera[:, CAM_RADIUS])  # [B, 3]
    look_at = spherical_to_cartesian(camera[:, CAM_LA_YAW], camera[:, CAM_LA_PITCH], camera[:, CAM_LA_RADIUS])
    forward = F.normalize(look_at - origin, dim=-1)  # [B, 3]
    world_up = torch.zeros_like(forward)
    world_up[:, 1] = 1.0
    left = F.normalize(torch.linalg.cross(world_up, forward, dim=-1), dim=-1)  # [B, 3]
    up = F.normalize(torch.linalg.cross(forward, left, dim=-1), dim=-1)  # [B, 3]
    rotation = torch.stack([-left, up, -forward], dim=-1)  # [B, 3, 3], columns are the camera axes
    c2w = torch.zeros(camera.shape[0], 4, 4, dtype=camera.dtype, device=camera.device)
    c2w[:, :3, :3] = rotation
    c2w[:, :3, 3] = origin
    c2w[:, 3, 3] = 1.0
    return c2w


def pixel_ndc(
    resolution: int,
    patch_params: torch.Tensor | None,
    batch_size: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NDC coordinates (u', v') of the pixel centres of a full image or a patch (3DGP ref §1.4, §1.7).

    Args:
        resolution: H = W of the rendered grid.
        patch_params: ``[B, 3]`` (s, o_x, o_y) or None for the full image (s = 1, o = 0).
        batch_size, device, dtype: used when ``patch_params`` is None.
    Returns:
        ``(u, v)``, each ``[B, H, W]``: u grows to the right, v grows upwards (v = +1 is the top row at s = 1).
    """
    if patch_params is not None:
        assert patch_params.ndim == 2 and patch_params.shape[1] == 3, "patch_params must be [B, 3]"
        batch_size, device, dtype = patch_params.shape[0], patch_params.device, patch_params.dtype
    line = torch.linspace(-1.0, 1.0, resolution, device=device, dtype=dtype)  # [W]
    u = line.view(1, 1, resolution).expand(batch_size, resolution, resolution)  # [B, H, W], left -> right
    v = line.flip(0).view(1, resolution, 1).expand(batch_size, resolution, resolution)  # [B, H, W], top = +1
    if patch_params is None:
        return u, v
    scale = patch_params[:, 0].view(-1, 1, 1)  # [B, 1, 1]
    offset_x = patch_params[:, 1].view(-1, 1, 1)
    offset_y = patch_params[:, 2].view(-1, 1, 1)
    u = (u + 1.0) * scale - 1.0 + 2.0 * offset_x  # [B, H, W]
    v = (v + 1.0) * scale - 1.0 + 2.0 * offset_y  # [B, H, W]; o_y counts from the bottom (v = -1)
    return u, v


def make_rays(
    camera: torch.Tensor,
    resolution: int,
    patch_params: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space rays through the pixel centres of a full image or a patch (3DGP ref §1.4).

    Args:
        camera: ``[B, 8]`` cameras (ref §2.1); FoV in degrees.
        resolution: H = W of the ray grid.
        patch_params: ``[B, 3]`` (s, o_x, o_y), or None for the full image.
    Returns:
        ``origins [B, H*W, 3]`` (the camera centre repeated) and unit ``dirs [B, H*W, 3]``, row-major.
    """
    batch_size = camera.shape[0]
    if patch_params is not None:
        patch_params = patch_params.to(device=camera.device, dtype=camera.dtype)
    c2w = camera_to_world(camera)  # [B, 4, 4]
    u, v = pixel_ndc(resolution, patch_params, batch_size, camera.device, camera.dtype)  # [B, H, W] each
    focal = 1.0 / torch.tan(camera[:, CAM_FOV] * (math.pi / 360.0))  # [B], 1 / tan(fov / 2)
    neg_focal = (-focal).view(batch_size, 1, 1).expand_as(u)  # [B, H, W]
    dirs_cam = F.normalize(torch.stack([u, v, neg_focal], dim=-1), dim=-1)  # [B, H, W, 3]
    dirs_cam = dirs_cam.reshape(batch_size, resolution * resolution, 3)  # [B, R, 3]
    dirs = torch.einsum("bij,brj->bri", c2w[:, :3, :3], dirs_cam)  # [B, R, 3]
    origins = c2w[:, :3, 3].unsqueeze(1).expand(-1, dirs.shape[1], -1)  # [B, R, 3]
    return origins, dirs
