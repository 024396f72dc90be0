"""The ``simple`` toy scenes (``3dgp prep toy --scenes simple``): what a small model can learn in CPU minutes.

The ``full`` scenes (:mod:`stages.prep.toy.sampling`) are deliberately hard, like ImageNet: off-centre framing, any
tilt, hovering objects, walls, busy ground textures, FoVs from 18 to 55 degrees. The simple ones keep the classes,
shapes, materials and lighting but remove everything a generator must learn before it can learn 3D:

* the object stands upright (tilt below ~11 degrees) on the ground at the world origin, at a size in a narrow range;
* the camera looks at the centre of the object's bounding sphere (no image-plane shift) from any yaw, from 55 to 80
  degrees from the zenith (looking slightly down), with a FoV of 25-35 degrees and the sphere filling 55-70 % of the
  frame, so the object sits near the image centre as in the camera model of the generator (3DGP ref §2.2);
* no walls; a low-contrast sandy ground and a plain sky.

Deterministic for (seed, index) like the full scenes, from an independent random stream.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from stages.prep.toy.sampling import hsv, rot_x, rot_y, sample_light, sample_material, sample_waves
from stages.prep.toy.scene import Backdrop, Camera, ObjectPose, SurfaceLook, ToyScene
from stages.prep.toy.shapes import TOY_CLASSES, sample_shape

SIMPLE_OBJECT_PATTERNS = {"solid": 0.5, "stripes": 0.25, "checker": 0.25}  # stripes/checker show the object turning


def simple_scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of simple item ``index`` (independent of the full scenes' stream)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0x51E])


def sample_simple_scene(seed: int, index: int) -> ToyScene:
    """Draw simple toy scene ``index`` of the dataset with ``seed`` (module docstring)."""
    rng = simple_scene_rng(seed, index)
    shape = sample_shape(TOY_CLASSES[int(rng.integers(len(TOY_CLASSES)))], rng)
    rotation = rot_y(rng.uniform(0, 2 * math.pi)) @ rot_x(rng.uniform(0.0, 0.2)) @ rot_y(rng.uniform(0, 2 * math.pi))
    world_radius = rng.uniform(0.7, 0.9)
    scale = world_radius / shape.bounding_radius()
    lowest = scale * shape.support(rotation.T @ np.array([0.0, -1.0, 0.0]))
    pose = ObjectPose(position=(0.0, float(lowest), 0.0), rotation=rotation, scale=scale)
    fov_deg = rng.uniform(25.0, 35.0)
    fill = rng.uniform(0.55, 0.7)
    radius = max(world_radius / (fill * math.tan(math.radians(fov_deg) / 2)), 1.4 * world_radius)
    camera = Camera(pose.position, float(rng.uniform(-180.0, 180.0)), float(rng.uniform(55.0, 80.0)), float(radius),
                    float(fov_deg))
    material = sample_material(rng)
    pattern = rng.choice(list(SIMPLE_OBJECT_PATTERNS), p=list(SIMPLE_OBJECT_PATTERNS.values()))
    material = dataclasses.replace(material, pattern=str(pattern))
    backdrop = _plain_backdrop(world_radius, camera, rng)
    light = sample_light(backdrop, camera, pose, rng)
    return ToyScene(shape=shape, pose=pose, material=material, camera=camera, light=light, backdrop=backdrop)


def _plain_backdrop(world_radius: float, camera: Camera, rng: np.random.Generator) -> Backdrop:
    hue, val = rng.uniform(), rng.uniform(0.5, 0.8)
    period = world_radius * rng.uniform(1.0, 2.0)
    ground = SurfaceLook(pattern="sand", color_a=hsv(hue, rng.uniform(0.05, 0.35), val),
                         color_b=hsv(hue, rng.uniform(0.05, 0.35), val * 0.85), period=float(period),
                         axis=(1.0, 0.0, 0.0), waves=sample_waves(rng, period * 1.5, planar=True))
    wall = SurfaceLook(pattern="plaster", color_a=(0.5, 0.5, 0.5), color_b=(0.5, 0.5, 0.5), period=1.0,
                       waves=sample_waves(rng, 1.0))
    sky = hsv(rng.uniform(0.55, 0.62), rng.uniform(0.15, 0.4), rng.uniform(0.8, 0.95))
    dome_radius = float(np.linalg.norm(camera.origin()) * 4.0 + 8.0 * world_radius)
    return Backdrop(ground=ground, walls=(), wall=wall, sky_zenith=sky, sky_horizon=sky, clouds=0.0,
                    dome_center=(0.0, 0.0, 0.0), dome_radius=dome_radius, fog_distance=dome_radius * 4.0)
