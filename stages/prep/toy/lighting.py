"""Light transport terms computed from the object's SDF: soft shadows and ambient occlusion.

Only the object casts shadows and occludes (the backdrop is convex from the camera's side). Both terms are
evaluated in the object frame and only for points whose query can reach the object's bounding sphere, so the
large, far parts of the ground cost nothing.
"""
from __future__ import annotations

import numpy as np

from stages.prep.toy.geometry import sphere_span, to_object_frame
from stages.prep.toy.scene import ToyScene

_SHADOW_STEPS = 40
_AO_OFFSETS = (0.05, 0.14, 0.3)  # probe distances along the normal, object units (bounding radius ~1)


def soft_shadow(scene: ToyScene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Sun visibility in [0, 1] [N] at world ``points`` [N, 3] with unit ``normals`` [N, 3].

    Marches towards the sun through the object's SDF and keeps the smallest k * d / s (distance to the object
    over distance travelled): a cheap penumbra whose width grows with the distance to the occluder.
    """
    q, n = to_object_frame(scene, points + normals * 1e-4, normals)
    to_sun = np.asarray(scene.light.direction) @ np.asarray(scene.pose.rotation)  # [3] object frame
    q = q + n * 0.01                                            # leave the surface before marching
    enter, leave = sphere_span(q, to_sun, scene.shape.bounding_radius() + 0.02)
    visible = np.ones(len(points))
    active = np.flatnonzero(leave > enter)
    s = np.maximum(enter, 0.02)
    k = scene.light.shadow_softness
    for _ in range(_SHADOW_STEPS):
        if active.size == 0:
            break
        d = scene.shape.sdf(q[active] + to_sun * s[active, None])
        visible[active] = np.minimum(visible[active], k * d / s[active])
        s[active] += np.clip(d, 0.01, 0.3)
        active = active[(s[active] < leave[active]) & (visible[active] > 1e-3)]
    visible = np.clip(visible, 0.0, 1.0)
    return visible * visible * (3.0 - 2.0 * visible)           # smoothstep: a rounder penumbra


def ambient_occlusion(scene: ToyScene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Ambient visibility in [0.2, 1] [N] from SDF probes along the normal (contact shadows, creases)."""
    q, n = to_object_frame(scene, points, normals)
    near = np.flatnonzero(np.linalg.norm(q, axis=1) < scene.shape.bounding_radius() + _AO_OFFSETS[-1])
    occlusion = np.zeros(len(near))
    for i, offset in enumerate(_AO_OFFSETS):
        d = scene.shape.sdf(q[near] + n[near] * offset)
        occlusion += np.clip(offset - d, 0.0, None) / offset * 0.6 ** i
    visible = np.ones(len(points))
    visible[near] = np.clip(1.0 - 0.55 * occlusion, 0.2, 1.0)
    return visible
