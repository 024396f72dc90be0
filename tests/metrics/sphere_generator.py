"""A real ``Generator`` whose scene is an analytic sphere: a test fixture for the geometry metrics and export.

``sphere_generator(...)`` builds ``stages.nn.generator.Generator`` from the ``tiny`` preset (mapping, renderer and
every public method are the real ones), puts it in eval mode, removes the camera adaptor (posterior camera = prior
camera) and replaces, on the instance, ``decode_points`` by an analytic scene and ``triplanes`` by zeros:

* geometry: a sphere of radius ``radius`` centred at the world origin, or at ``offset`` (an off-centre sphere
  changes its depth map when the camera turns, for export tests). Raw density is ``(radius - |p - offset|) /
  SHARPNESS`` clamped to ``[OUTSIDE_RAW_DENSITY, INSIDE_RAW_DENSITY]``: softplus of it is
  ~1e3 just 0.01 inside (an opaque, sharp surface) and 4.5e-5 outside: transparent along a ray, but the renderer's
  last sample (delta 1e10) is still opaque, so background pixels get depth ~ ``ray_end`` like a real 3DGP render.
  An extracted mesh (level set of the density) is this sphere.
* colour: ``color`` is an RGB triple in [0, 1]; the raw rgb is ``2 * color - 1`` (the generator's [-1, 1] space), so
  ``(img + 1) / 2``, and vertex colours mapped the same way, equal ``color``. The colour is defined everywhere (the
  background shows it too).
* ``textured=True``: the colour is modulated by vertical stripes fixed to the object,
  ``color * (0.5 + 0.5 sin(STRIPE_FREQ * x))``: a consistent 3-D texture.
* ``view_dependent=True`` (implies the stripes): the stripes are computed in a frame that turns with the yaw of the
  camera being rendered (``x`` of the point rotated so that this camera sits at yaw 0), so they stick to the
  screen: what a 2-D generator faking 3-D looks like. ``render`` is wrapped on the instance to store the cameras
  (``G.sphere_camera`` ``[B, 8]``) while it renders; ``decode_points`` reads their yaw (per batch item).
* ``triplanes`` returns zeros of the real shape ``[B, 3, feat_dim, R, R]``: the scene ignores them, and this skips
  the synthesis network, the slowest part on CPU.

Rendering: the ray interval is widened to [RAY_START, RAY_END] = [0.6, 1.4] (the tiny preset's [0.75, 1.25] would
put the front point of the default sphere, 1 - radius = 0.75 from a camera at radius 1, exactly on the near bound;
any radius < 0.4 fits now), with the official 32 + 32 samples per ray. The rendered depth of a surface pixel is the
analytic ray-sphere distance plus the renderer's importance-sampling bias: ~0.008 on average, at most about one
coarse spacing (0.026). ``resolution`` must be a power of two (a config rule); render other sizes with
``G.render(planes, camera, resolution=...)``.

Public API:
  sphere_generator(radius=0.25, color=(0.8, 0.2, 0.2), textured=False, view_dependent=False, resolution=32,
                   offset=(0, 0, 0)) -> Generator (eval mode, camera_adaptor None)
  sphere_color(points [B, N, 3], color, textured, yaw [B] | None) -> raw rgb [B, N, 3] in [-1, 1]
  ray_sphere_distance(origins [..., 3], dirs [..., 3], radius) -> [...] (inf where the ray misses)
"""
from __future__ import annotations

import dataclasses
import math
import types

import torch

from stages.nn.build import build_generator
from stages.nn.config import get_preset
from stages.nn.generator import Generator
from stages.nn.rays import CAM_YAW

SHARPNESS = 1e-5  # raw density = (radius - |p|) / SHARPNESS (a surface sharper than the sample spacing)
INSIDE_RAW_DENSITY = 1e4  # clamp of the raw density inside the sphere
OUTSIDE_RAW_DENSITY = -10.0  # softplus(-10) = 4.5e-5: transparent, but the last (delta 1e10) sample is opaque
STRIPE_FREQ = 20.0  # stripes sin(STRIPE_FREQ * x), x in world units
RAY_START, RAY_END = 0.6, 1.4  # widened ray interval (see the module docstring)
NUM_STEPS = 32  # coarse and fine samples per ray


def ray_sphere_distance(origins: torch.Tensor, dirs: torch.Tensor, radius: float) -> torch.Tensor:
    """Distance along unit rays ``[..., 3]`` to the first hit of the origin-centred sphere; inf on a miss."""
    b = (origins * dirs).sum(-1)  # [...]
    c = (origins * origins).sum(-1) - radius ** 2
    disc = b * b - c
    t = -b - torch.sqrt(disc.clamp(min=0.0))
    return torch.where(disc >= 0, t, torch.full_like(t, math.inf))  # [...]


def _rotate_yaw(points: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Rotate ``[B, N, 3]`` points about +y so that a camera at ``yaw`` [B] would sit at yaw 0 (rays.py convention)."""
    cos, sin = torch.cos(yaw).view(-1, 1), torch.sin(yaw).view(-1, 1)  # [B, 1]
    x, y, z = points.unbind(-1)  # [B, N] each
    # A camera at yaw t sits at (-sin t, ., cos t); rotating by +t about y maps it to (0, ., 1).
    return torch.stack([x * cos + z * sin, y, -x * sin + z * cos], dim=-1)  # [B, N, 3]


def sphere_color(
    points: torch.Tensor,
    color: tuple[float, float, float],
    textured: bool,
    yaw: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raw rgb ``[B, N, 3]`` in [-1, 1] at ``points [B, N, 3]``; ``yaw [B]`` makes the texture follow the camera."""
    base = torch.tensor(color, dtype=points.dtype, device=points.device).view(1, 1, 3)  # [1, 1, 3] in [0, 1]
    if textured or yaw is not None:
        local = points if yaw is None else _rotate_yaw(points, yaw.to(points.dtype))
        stripes = 0.5 + 0.5 * torch.sin(STRIPE_FREQ * local[..., :1])  # [B, N, 1]
        base = base * stripes
    return (2.0 * base - 1.0).expand(*points.shape[:2], 3)  # [B, N, 3]


def sphere_generator(
    radius: float = 0.25,
    color: tuple[float, float, float] = (0.8, 0.2, 0.2),
    textured: bool = False,
    view_dependent: bool = False,
    resolution: int = 32,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Generator:
    """A tiny real ``Generator`` rendering an analytic sphere centred at ``offset`` (module docstring), in eval mode."""
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(
        cfg, img_resolution=resolution,
        render=dataclasses.replace(cfg.render, ray_start=RAY_START, ray_end=RAY_END, num_coarse_steps=NUM_STEPS,
                                   num_fine_steps=NUM_STEPS),
    )
    G = build_generator(cfg)
    G.camera_adaptor = None  # posterior camera = prior camera
    G.sphere_radius = radius
    G.sphere_camera = None  # [B, 8] cameras of the render in progress (set by the wrapped render)

    def decode_points(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centre = torch.tensor(offset, dtype=points.dtype, device=points.device)  # [3]
        sigma_raw = (radius - (points - centre).norm(dim=-1)) / SHARPNESS
        sigma_raw = sigma_raw.clamp(OUTSIDE_RAW_DENSITY, INSIDE_RAW_DENSITY)
        yaw = None
        if view_dependent:
            assert self.sphere_camera is not None, "view-dependent sphere: decode_points called outside render"
            yaw = self.sphere_camera[:, CAM_YAW]  # [B]
        return sphere_color(points, color, textured, yaw), sigma_raw  # [B, N, 3], [B, N]

    def render(self, planes: torch.Tensor, camera: torch.Tensor, *args, **kwargs):
        self.sphere_camera = camera
        try:
            return Generator.render(self, planes, camera, *args, **kwargs)
        finally:
            self.sphere_camera = None

    def triplanes(self, ws: torch.Tensor, noise_mode: str = "random", generator=None) -> torch.Tensor:
        return ws.new_zeros(ws.shape[0], 3, self.backbone.feat_dim, self.backbone.tri_plane_res,
                            self.backbone.tri_plane_res)  # [B, 3, F, R, R]

    G.decode_points = types.MethodType(decode_points, G)
    G.triplanes = types.MethodType(triplanes, G)
    G.render = types.MethodType(render, G)
    return G.eval()
