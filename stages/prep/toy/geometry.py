"""Small geometric helpers shared by the toy renderer and its lighting: frame changes and ray-sphere spans."""
from __future__ import annotations

import numpy as np

from stages.prep.toy.scene import ToyScene


def to_object_frame(scene: ToyScene, points: np.ndarray, vectors: np.ndarray | None = None):
    """World points [N, 3] (and optionally directions [N, 3]) -> object frame: x_obj = R^T (x - c) / s.

    Directions are only rotated, so unit vectors stay unit. Returns ``q`` or ``(q, v)``.
    """
    rot = np.asarray(scene.pose.rotation)
    q = (points - np.asarray(scene.pose.position)) @ rot / scene.pose.scale
    return q if vectors is None else (q, vectors @ rot)


def sphere_span(q0: np.ndarray, dq: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Entry (clamped at 0) and exit distances of rays q0 + t*dq (unit dq) through a sphere at the origin.

    Either of ``q0``/``dq`` may be [N, 3] or a single [3] vector; a miss returns (inf, -inf).
    """
    b = (q0 * dq).sum(-1)
    c = (q0 * q0).sum(-1) - radius * radius
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    enter, leave = np.maximum(-b - root, 0.0), -b + root
    return np.where(disc > 0.0, enter, np.inf), np.where(disc > 0.0, leave, -np.inf)
