"""Toy scene description (object, camera, light, backdrop) and its deterministic random sampler.

A scene is plain data: the renderer (``render.py``) draws any ``ToyScene``, and ``sample_scene(seed, index)`` draws
the random ones of the toy dataset (issue 3, source 1). The camera follows the 3DGP convention (3DGP ref §1.4):
y up, the origin at ``look_at + sph(yaw, pitch, radius)`` with pitch measured from +y, OpenGL camera axes, FoV in
degrees between the extreme pixel centres. Colours are linear RGB in [0, 1]. World units: the ground is y = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stages.prep.toy.shapes import Shape


def spherical_to_cartesian(yaw_rad: float, pitch_rad: float, radius: float) -> np.ndarray:
    """3DGP ``spherical2cartesian`` (3DGP ref §1.4): yaw about +y, pitch from +y; yaw 0 / pitch pi/2 is +z."""
    return radius * np.array([
        math.sin(pitch_rad) * math.sin(-yaw_rad),
        math.cos(pitch_rad),
        math.sin(pitch_rad) * math.cos(yaw_rad),
    ])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera orbiting ``look_at`` (3DGP ref §1.4, §2.1; roll is always 0)."""

    look_at: tuple[float, float, float]         # world point the camera looks at
    yaw_deg: float                              # orbit yaw about +y
    pitch_deg: float                            # orbit pitch from +y (90 = level with look_at)
    radius: float                               # distance from look_at to the camera
    fov_deg: float                              # full angle between the extreme pixel centres

    def origin(self) -> np.ndarray:
        """Camera centre in world coordinates [3]."""
        offset = spherical_to_cartesian(math.radians(self.yaw_deg), math.radians(self.pitch_deg), self.radius)
        return np.asarray(self.look_at, np.float64) + offset

    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation [3, 3] with columns (right, up, -forward): OpenGL axes (3DGP ref §1.4)."""
        forward = np.asarray(self.look_at, np.float64) - self.origin()
        forward /= np.linalg.norm(forward)
        left = np.cross([0.0, 1.0, 0.0], forward)
        left /= np.linalg.norm(left)
        up = np.cross(forward, left)
        return np.stack([-left, up, -forward], axis=1)

    def cam2world(self) -> np.ndarray:
        """4x4 camera-to-world matrix."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation(), self.origin()
        return m


@dataclass(frozen=True)
class ObjectPose:
    """Object-to-world similarity: x_world = rotation @ (scale * x_object) + position."""

    position: tuple[float, float, float]        # world position of the object-frame origin
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # [3, 3] object-to-world rotation
    scale: float = 1.0                          # uniform scale, object units -> world units


@dataclass(frozen=True)
class SurfaceLook:
    """A procedural surface texture: two colours mixed by a pattern (see textures.py)."""

    pattern: str = "solid"                      # object: solid|stripes|checker|dots|marble; ground/wall: see textures
    color_a: tuple[float, float, float] = (0.7, 0.7, 0.7)  # main colour (linear RGB)
    color_b: tuple[float, float, float] = (0.3, 0.3, 0.3)  # second colour (linear RGB)
    period: float = 0.5                         # pattern period in the surface's own units
    axis: tuple[float, float, float] = (0.0, 1.0, 0.0)     # stripe / plank direction (unit)
    waves: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # [K, 4] (wave vector xyz, phase) for noise
    specular: float = 0.0                       # Blinn-Phong highlight strength
    shininess: float = 32.0                     # Blinn-Phong exponent


@dataclass(frozen=True)
class Light:
    """A sun (directional light) plus hemispherical ambient light."""

    direction: tuple[float, float, float] = (0.4, 0.8, 0.45)  # unit vector towards the sun
    sun_color: tuple[float, float, float] = (1.0, 0.95, 0.85)  # sun radiance (linear RGB)
    sky_ambient: tuple[float, float, float] = (0.25, 0.3, 0.38)  # ambient from above
    ground_ambient: tuple[float, float, float] = (0.12, 0.1, 0.08)  # ambient bounced from below
    shadow_softness: float = 10.0               # penumbra sharpness k of the soft-shadow march (larger = harder)


@dataclass(frozen=True)
class Backdrop:
    """Ground plane y = 0, optional vertical walls, and a sky dome that closes every ray at a finite depth."""

    ground: SurfaceLook = field(default_factory=lambda: SurfaceLook(pattern="checker"))
    walls: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()  # ((normal xyz, point xyz), ...), normals face the camera
    wall: SurfaceLook = field(default_factory=lambda: SurfaceLook(pattern="plaster"))
    sky_zenith: tuple[float, float, float] = (0.18, 0.35, 0.75)  # sky colour straight up
    sky_horizon: tuple[float, float, float] = (0.7, 0.78, 0.85)  # sky colour at the horizon (also the fog colour)
    clouds: float = 0.0                         # cloud cover in [0, 1]
    dome_center: tuple[float, float, float] = (0.0, 0.0, 0.0)  # sky dome centre (on the ground)
    dome_radius: float = 50.0                   # sky dome radius: the depth of the sky
    fog_distance: float = 200.0                 # distance at which ~63% of the colour is fog


@dataclass(frozen=True)
class ToyScene:
    """Everything needed to render one toy image."""

    shape: Shape                                # the object's geometry and class
    pose: ObjectPose                            # where the object stands
    material: SurfaceLook                       # the object's texture and gloss
    camera: Camera                              # the viewpoint
    light: Light = field(default_factory=Light)
    backdrop: Backdrop = field(default_factory=Backdrop)

    def object_bounds(self) -> tuple[np.ndarray, float]:
        """World bounding sphere (centre [3], radius) of the object."""
        return np.asarray(self.pose.position, np.float64), self.pose.scale * self.shape.bounding_radius()
