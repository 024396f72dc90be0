"""Random toy scenes: deterministic for (seed, index) and independent of the output resolution.

Each draw picks a class, a random instance of it, a random texture, scale, orientation and ground contact, then a
camera (FoV, yaw/pitch, distance) that frames the object off-centre, a sun and a backdrop (issue 3, source 1:
"deliberately non-aligned"). ``scene_meta`` turns a scene into a JSON-friendly dict for the dataset record.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from stages.prep.toy.scene import Backdrop, Camera, Light, ObjectPose, SurfaceLook, ToyScene
from stages.prep.toy.shapes import TOY_CLASSES, sample_shape

OBJECT_PATTERNS = ("solid", "stripes", "checker", "dots", "marble")
GROUND_PATTERNS = ("checker", "planks", "grass", "sand", "tiles")
WALL_PATTERNS = ("bricks", "stripes", "plaster")


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of item ``index`` of a toy dataset with ``seed`` (order-independent, resumable)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0x70F])


def sample_scene(seed: int, index: int) -> ToyScene:
    """Draw toy scene ``index`` of the dataset with ``seed`` (issue 3, source 1)."""
    rng = scene_rng(seed, index)
    shape = sample_shape(TOY_CLASSES[int(rng.integers(len(TOY_CLASSES)))], rng)
    pose = _sample_pose(shape, rng)
    camera = _sample_camera(pose, shape.bounding_radius() * pose.scale, rng)
    backdrop = _sample_backdrop(pose, camera, shape.bounding_radius() * pose.scale, rng)
    light = sample_light(backdrop, camera, pose, rng)
    return ToyScene(shape=shape, pose=pose, material=sample_material(rng), camera=camera, light=light,
                    backdrop=backdrop)


def rot_y(angle: float) -> np.ndarray:
    """The 3x3 rotation by ``angle`` radians about the y (up) axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    """The 3x3 rotation by ``angle`` radians about the x axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _sample_pose(shape, rng: np.random.Generator) -> ObjectPose:
    # Random yaw and spin, a tilt that is usually moderate and sometimes "lying on its side", a random size,
    # and a ground contact from the support function (sometimes hovering, for a detached shadow).
    tilt_kind = rng.uniform()
    tilt = rng.uniform(0.0, 0.35) if tilt_kind < 0.55 else rng.uniform(0.35, 1.1) if tilt_kind < 0.8 else \
        rng.uniform(1.35, 1.7)
    rotation = rot_y(rng.uniform(0, 2 * math.pi)) @ rot_x(tilt) @ rot_y(rng.uniform(0, 2 * math.pi))
    world_radius = rng.uniform(0.4, 1.2)
    scale = world_radius / shape.bounding_radius()
    hover = rng.uniform(0.08, 0.5) * world_radius if rng.uniform() < 0.2 else 0.0
    lowest = scale * shape.support(rotation.T @ np.array([0.0, -1.0, 0.0]))  # depth of the lowest point below origin
    xz = rng.uniform(-1.0, 1.0, size=2)
    return ObjectPose(position=(float(xz[0]), float(hover + lowest), float(xz[1])), rotation=rotation, scale=scale)


def _sample_camera(pose: ObjectPose, world_radius: float, rng: np.random.Generator) -> Camera:
    # Frame the bounding sphere to fill a random fraction of the image, then slide camera and look-at together
    # in the image plane so the object lands off-centre (a pure image-plane shift, same viewing direction).
    fov_deg = rng.uniform(18.0, 55.0)
    fill = rng.uniform(0.3, 0.75)                       # bounding-sphere radius / image half-width (NDC)
    half_tan = math.tan(math.radians(fov_deg) / 2)
    radius = max(world_radius / (fill * half_tan), 1.4 * world_radius)
    yaw_deg, pitch_deg = rng.uniform(-180.0, 180.0), rng.uniform(48.0, 84.0)
    centre = np.asarray(pose.position)
    probe = Camera(tuple(centre), yaw_deg, pitch_deg, radius, fov_deg)
    rot = probe.rotation()
    # Exact NDC radius of the sphere's silhouette when centred, then how far its centre may move (NDC) and
    # stay in frame; converted to a world shift at the object's distance.
    ndc_radius = math.tan(math.asin(min(world_radius / radius, 0.99))) / half_tan
    room = max(1.0 - ndc_radius, 0.0) * 0.85 * radius * half_tan
    across, along_up = rng.uniform(-room, room), rng.uniform(-room, room)
    # Keep the camera at least 0.15 radii above the ground: its height is centre_y + up_y * along_up + r cos(pitch).
    lowest_up = (0.15 * world_radius - centre[1] - radius * math.cos(math.radians(pitch_deg))) / rot[1, 1]
    look_at = centre + rot[:, 0] * across + rot[:, 1] * max(along_up, lowest_up)
    return Camera(tuple(float(x) for x in look_at), float(yaw_deg), float(pitch_deg), float(radius), float(fov_deg))


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV in [0, 1] (hue wraps) -> linear RGB (sRGB-ish gamma 2.2 undone so shading happens in linear light)."""
    return tuple(float(c) ** 2.2 for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _random_unit(rng: np.random.Generator) -> tuple[float, float, float]:
    v = rng.normal(size=3)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def sample_waves(rng: np.random.Generator, period: float, count: int = 5, planar: bool = False) -> np.ndarray:
    """``count`` random plane waves [count, 4] (wave vector, phase) of about ``period``, summed into a cheap smooth
    noise field by textures.py; ``planar`` keeps the wave vectors horizontal."""
    dirs = rng.normal(size=(count, 3))
    if planar:
        dirs[:, 1] = 0.0
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freqs = 2 * math.pi / period * rng.uniform(0.5, 2.5, size=(count, 1))
    return np.concatenate([dirs * freqs, rng.uniform(0, 2 * math.pi, size=(count, 1))], axis=1)


def sample_material(rng: np.random.Generator) -> SurfaceLook:
    """An object's look: saturated random colours; the second a complementary or a darker/lighter variant."""
    hue, sat, val = rng.uniform(), rng.uniform(0.45, 0.95), rng.uniform(0.6, 0.98)
    if rng.uniform() < 0.5:
        color_b = hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.9), rng.uniform(0.5, 0.95))
    else:
        color_b = hsv(hue + rng.uniform(-0.06, 0.06), sat * rng.uniform(0.3, 1.0), val * rng.uniform(0.35, 0.7))
    period = rng.uniform(0.22, 0.6)
    glossy = rng.uniform() < 0.5
    return SurfaceLook(
        pattern=str(rng.choice(OBJECT_PATTERNS, p=[0.12, 0.24, 0.22, 0.2, 0.22])),
        color_a=hsv(hue, sat, val),
        color_b=color_b,
        period=float(period),
        axis=_random_unit(rng),
        waves=sample_waves(rng, period * 2.0),
        specular=float(rng.uniform(0.2, 0.6) if glossy else rng.uniform(0.0, 0.08)),
        shininess=float(rng.uniform(12.0, 80.0)),
    )


def _sample_backdrop(pose: ObjectPose, camera: Camera, world_radius: float, rng: np.random.Generator) -> Backdrop:
    # A textured ground, 0-2 walls behind the object facing the camera (a "room corner" for two), and a sky dome.
    centre = np.asarray(pose.position)
    to_cam = camera.origin() - centre
    heading = math.atan2(to_cam[0], to_cam[2])          # horizontal direction from object to camera
    num_walls = int(rng.choice([0, 1, 2], p=[0.45, 0.38, 0.17]))
    turns = [rng.uniform(-0.6, 0.6)] if num_walls == 1 else [rng.uniform(0.5, 1.0), -rng.uniform(0.5, 1.0)]
    walls = []
    for turn in turns[:num_walls]:
        normal = np.array([math.sin(heading + turn), 0.0, math.cos(heading + turn)])
        point = centre - normal * world_radius * rng.uniform(1.25, 4.0)
        walls.append((tuple(float(x) for x in normal), (float(point[0]), 0.0, float(point[2]))))
    ground_hue = rng.uniform()
    ground_period = world_radius * rng.uniform(0.5, 1.6)
    ground = SurfaceLook(
        pattern=str(rng.choice(GROUND_PATTERNS)),
        color_a=hsv(ground_hue, rng.uniform(0.05, 0.5), rng.uniform(0.45, 0.85)),
        color_b=hsv(ground_hue + rng.uniform(-0.1, 0.1), rng.uniform(0.05, 0.5), rng.uniform(0.2, 0.6)),
        period=float(ground_period),
        axis=(math.cos(a := rng.uniform(0, math.pi)), 0.0, math.sin(a)),
        waves=sample_waves(rng, ground_period * 1.5, planar=True),
    )
    wall_hue, wall_period = rng.uniform(), world_radius * rng.uniform(0.3, 0.9)
    wall = SurfaceLook(
        pattern=str(rng.choice(WALL_PATTERNS)),
        color_a=hsv(wall_hue, rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.9)),
        color_b=hsv(wall_hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.5), rng.uniform(0.25, 0.6)),
        period=float(wall_period),
        waves=sample_waves(rng, wall_period * 2.0),
    )
    sunset = rng.uniform() < 0.2
    zenith = hsv(rng.uniform(0.55, 0.66), rng.uniform(0.4, 0.8), rng.uniform(0.55, 0.9))
    horizon = hsv(rng.uniform(0.02, 0.1), rng.uniform(0.3, 0.6), 0.95) if sunset else \
        hsv(rng.uniform(0.52, 0.62), rng.uniform(0.05, 0.25), rng.uniform(0.8, 0.98))
    dome_radius = float(np.linalg.norm(to_cam) * rng.uniform(2.5, 5.0) + 8.0 * world_radius)
    return Backdrop(ground=ground, walls=tuple(walls), wall=wall, sky_zenith=zenith, sky_horizon=horizon,
                    clouds=float(rng.uniform(0.0, 0.8)), dome_center=(float(centre[0]), 0.0, float(centre[2])),
                    dome_radius=dome_radius, fog_distance=dome_radius * float(rng.uniform(1.5, 6.0)))


def sample_light(backdrop: Backdrop, camera: Camera, pose: ObjectPose, rng: np.random.Generator) -> Light:
    """A sun at a random elevation, usually on the camera's side (front or side light, as in most photos) and
    sometimes anywhere (back light); sometimes overcast (dim sun, strong ambient, very soft shadows)."""
    to_cam = camera.origin() - np.asarray(pose.position)
    heading = math.atan2(to_cam[0], to_cam[2])
    azimuth = heading + rng.uniform(-1.9, 1.9) if rng.uniform() < 0.8 else rng.uniform(0, 2 * math.pi)
    elevation = math.radians(rng.uniform(22.0, 70.0))
    direction = (math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth))
    overcast = rng.uniform() < 0.2
    strength = rng.uniform(0.4, 0.65) if overcast else rng.uniform(1.0, 1.5)
    warmth = rng.uniform(0.0, 0.25)
    sun = (strength, strength * (1 - 0.35 * warmth), strength * (1 - 0.8 * warmth))
    ambient = rng.uniform(0.45, 0.65) if overcast else rng.uniform(0.2, 0.4)
    sky_ambient = tuple(ambient * (0.5 * z + 0.5 * h) for z, h in zip(backdrop.sky_zenith, backdrop.sky_horizon))
    ground_ambient = tuple(0.35 * ambient * c for c in backdrop.ground.color_a)
    return Light(direction=tuple(float(x) for x in direction), sun_color=tuple(float(x) for x in sun),
                 sky_ambient=tuple(float(x) for x in sky_ambient),
                 ground_ambient=tuple(float(x) for x in ground_ambient),
                 shadow_softness=float(rng.uniform(2.0, 5.0) if overcast else rng.uniform(8.0, 24.0)))


def scene_meta(scene: ToyScene) -> dict:
    """JSON-friendly description of a scene for the dataset record (camera, pose, colours, light, backdrop)."""
    cam, pose, look = scene.camera, scene.pose, scene.material
    return {
        "class": scene.shape.name,
        "label": scene.shape.label,
        "camera": {"fov_deg": cam.fov_deg, "yaw_deg": cam.yaw_deg, "pitch_deg": cam.pitch_deg,
                   "radius": cam.radius, "look_at": list(cam.look_at), "origin": cam.origin().tolist(),
                   "cam2world": cam.cam2world().tolist()},
        "object": {"position": list(pose.position), "rotation": np.asarray(pose.rotation).tolist(),
                   "scale": pose.scale, "bounding_radius": scene.object_bounds()[1], "shape": scene.shape.extra},
        "material": {"pattern": look.pattern, "color_a": list(look.color_a), "color_b": list(look.color_b),
                     "period": look.period, "specular": look.specular},
        "light": {"direction": list(scene.light.direction), "sun_color": list(scene.light.sun_color)},
        "backdrop": {"ground": scene.backdrop.ground.pattern, "num_walls": len(scene.backdrop.walls),
                     "wall": scene.backdrop.wall.pattern, "sky_radius": scene.backdrop.dome_radius},
    }
