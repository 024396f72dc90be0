"""Signed distance functions of the toy shape classes, with support functions for resting them on the ground.

Every class is a small union of primitives in an object-local frame (y up, roughly centred on the origin). The
renderer sphere-traces the union (issue 3, source 1: "one object of a random class"). Each primitive also knows
its *support function* h(d) = max over the solid of <x, d>, which gives the exact lowest point of a rotated
object, so objects can stand on the ground plane whatever their orientation.

The formulas are standard closed-form distances (sphere, rounded box, capped cylinder, capped cone, torus,
capsule, cut sphere) written out from their geometry; composites use a polynomial smooth minimum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Labels are indices into this list; keep its order stable (it is written into dataset meta records).
TOY_CLASSES: list[str] = [
    "sphere",
    "rounded_box",
    "cylinder",
    "cone",
    "torus",
    "capsule",
    "snowman",
    "mushroom",
]


@dataclass(frozen=True)
class Primitive:
    """One solid in the object frame: ``kind`` picks the distance function, ``params`` its sizes."""

    kind: str                                   # sphere | round_box | cylinder | cone | torus | capsule | cut_sphere
    params: tuple[float, ...]                   # sizes, see _PRIMITIVE_SDF for each kind's order
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # primitive centre in the object frame


@dataclass(frozen=True)
class Shape:
    """A labelled toy shape: a smooth union of primitives (object frame, y up)."""

    name: str                                   # one of TOY_CLASSES
    parts: tuple[Primitive, ...]                # primitives united with a smooth minimum
    blend: float = 0.0                          # smooth-union radius (0 = hard union)
    extra: dict = field(default_factory=dict)   # sampled size parameters, for the meta record

    @property
    def label(self) -> int:
        """Index of the class in TOY_CLASSES."""
        return TOY_CLASSES.index(self.name)

    def bounding_radius(self) -> float:
        """Radius of a sphere around the object-frame origin that contains the whole shape."""
        return max(np.linalg.norm(p.offset) + _primitive_radius(p) for p in self.parts) + self.blend

    def sdf(self, q: np.ndarray) -> np.ndarray:
        """Signed distance (a lower bound near blends) at object-frame points ``q`` [N, 3] -> [N]."""
        dist = None
        for part in self.parts:
            d = _PRIMITIVE_SDF[part.kind](q - np.asarray(part.offset, q.dtype), *part.params)
            dist = d if dist is None else _smooth_min(dist, d, self.blend)
        return dist

    def support(self, direction: np.ndarray) -> float:
        """Support function max_x <x, direction> over the solid (object frame, ``direction`` unit [3])."""
        return max(float(np.dot(p.offset, direction)) + _primitive_support(p, direction) for p in self.parts)


# ----------------------------------------------------------------------------------------------------------------
# Primitive distances. ``q`` [N, 3] is relative to the primitive centre; the axis of symmetry is y.

def _sphere(q, radius):
    return np.linalg.norm(q, axis=-1) - radius


def _round_box(q, bx, by, bz, rounding):
    d = np.abs(q) - np.array([bx, by, bz], q.dtype)  # [N, 3] half extents exclude the rounding
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    inside = np.minimum(d.max(axis=-1), 0.0)
    return outside + inside - rounding


def _rounded_2d(dx, dy, rounding):
    # Distance to a 2-D box given per-axis excess (dx, dy), then rounded by ``rounding``.
    outside = np.sqrt(np.maximum(dx, 0.0) ** 2 + np.maximum(dy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(dx, dy), 0.0) - rounding


def _cylinder(q, radius, half_height, rounding):
    rho = np.hypot(q[:, 0], q[:, 2])
    return _rounded_2d(rho - (radius - rounding), np.abs(q[:, 1]) - (half_height - rounding), rounding)


def _cone(q, r_bottom, r_top, half_height):
    # Capped cone (frustum) in the (rho, y) half-plane: the distance to the trapezoid with corners
    # (0, -h), (r_bottom, -h), (r_top, h), (0, h); sign from being inside both the caps and the slanted side.
    rho = np.hypot(q[:, 0], q[:, 2])
    y = q[:, 1]
    cap_r = np.where(y < 0.0, r_bottom, r_top)
    ca_x = rho - np.minimum(rho, cap_r)
    ca_y = np.abs(y) - half_height
    # Closest point on the slanted segment from (r_top, h) towards (r_bottom, -h).
    e_x, e_y = r_bottom - r_top, -2.0 * half_height
    w_x, w_y = rho - r_top, y - half_height
    s = np.clip((w_x * e_x + w_y * e_y) / (e_x * e_x + e_y * e_y), 0.0, 1.0)
    cb_x, cb_y = w_x - e_x * s, w_y - e_y * s
    inside = (cb_x < 0.0) & (ca_y < 0.0)
    dist = np.sqrt(np.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y))
    return np.where(inside, -dist, dist)


def _torus(q, major, minor):
    ring = np.hypot(q[:, 0], q[:, 2]) - major
    return np.hypot(ring, q[:, 1]) - minor


def _capsule(q, half_length, radius):
    axis_y = np.clip(q[:, 1], -half_length, half_length)
    return np.sqrt(q[:, 0] ** 2 + (q[:, 1] - axis_y) ** 2 + q[:, 2] ** 2) - radius


def _cut_sphere(q, radius, cut_y):
    # The part of a sphere (centred at the primitive origin) above the plane y = cut_y: a mushroom cap.
    # max() of the two distances is a valid lower bound, which is all sphere tracing needs.
    return np.maximum(np.linalg.norm(q, axis=-1) - radius, cut_y - q[:, 1])


_PRIMITIVE_SDF = {
    "sphere": _sphere,            # (radius,)
    "round_box": _round_box,      # (bx, by, bz, rounding)
    "cylinder": _cylinder,        # (radius, half_height, rounding)
    "cone": _cone,                # (r_bottom, r_top, half_height)
    "torus": _torus,              # (major, minor)
    "capsule": _capsule,          # (half_length, radius)
    "cut_sphere": _cut_sphere,    # (radius, cut_y)
}


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distances with blend radius ``k`` (hard minimum when k == 0)."""
    if k <= 0.0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _primitive_radius(p: Primitive) -> float:
    """Radius of a sphere around the primitive centre that contains it."""
    a = p.params
    return {
        "sphere": lambda: a[0],
        "round_box": lambda: float(np.linalg.norm(a[:3])) + a[3],
        "cylinder": lambda: float(np.hypot(a[0], a[1])),
        "cone": lambda: float(np.hypot(max(a[0], a[1]), a[2])),
        "torus": lambda: a[0] + a[1],
        "capsule": lambda: a[0] + a[1],
        "cut_sphere": lambda: a[0],
    }[p.kind]()


def _primitive_support(p: Primitive, d: np.ndarray) -> float:
    """Support function of one primitive about its own centre, for a unit direction ``d`` [3]."""
    a = p.params
    d_rho = float(np.hypot(d[0], d[2]))  # length of the direction's horizontal part
    d_y = float(d[1])
    if p.kind == "sphere":
        return a[0]
    if p.kind == "round_box":
        return float(np.dot(np.abs(d), a[:3])) + a[3]
    if p.kind == "cylinder":
        r, h, rr = a
        return (r - rr) * d_rho + (h - rr) * abs(d_y) + rr
    if p.kind == "cone":
        r_bottom, r_top, h = a
        return max(r_top * d_rho + h * d_y, r_bottom * d_rho - h * d_y)
    if p.kind == "torus":
        return a[0] * d_rho + a[1]
    if p.kind == "capsule":
        return a[0] * abs(d_y) + a[1]
    if p.kind == "cut_sphere":
        radius, cut_y = a
        if radius * d_y >= cut_y:  # the sphere's own support point lies on the kept cap
            return radius
        rim = np.sqrt(max(radius * radius - cut_y * cut_y, 0.0))
        return cut_y * d_y + rim * d_rho
    raise AssertionError(p.kind)


# ----------------------------------------------------------------------------------------------------------------
# Random shapes of each class. Sizes are in object units (bounding radius about 1).

def sample_shape(name: str, rng: np.random.Generator) -> Shape:
    """Draw a random instance of toy class ``name`` (its proportions vary within the class)."""
    u = rng.uniform
    if name == "sphere":
        return Shape(name, (Primitive("sphere", (1.0,)),))
    if name == "rounded_box":
        half = u(0.35, 0.85, size=3)
        rounding = float(u(0.03, 0.15))
        return Shape(name, (Primitive("round_box", (*map(float, half), rounding)),), extra={"half_extents": half.tolist()})
    if name == "cylinder":
        radius, half_height = float(u(0.35, 0.75)), float(u(0.3, 0.85))
        return Shape(name, (Primitive("cylinder", (radius, half_height, 0.04)),),
                     extra={"radius": radius, "half_height": half_height})
    if name == "cone":
        r_bottom, r_top, half_height = float(u(0.5, 0.8)), float(u(0.0, 0.12)), float(u(0.5, 0.85))
        return Shape(name, (Primitive("cone", (r_bottom, r_top, half_height)),),
                     extra={"r_bottom": r_bottom, "r_top": r_top, "half_height": half_height})
    if name == "torus":
        major, minor = float(u(0.55, 0.75)), float(u(0.14, 0.3))
        return Shape(name, (Primitive("torus", (major, minor)),), extra={"major": major, "minor": minor})
    if name == "capsule":
        half_length, radius = float(u(0.3, 0.65)), float(u(0.25, 0.42))
        return Shape(name, (Primitive("capsule", (half_length, radius)),),
                     extra={"half_length": half_length, "radius": radius})
    if name == "snowman":
        return _sample_snowman(rng)
    if name == "mushroom":
        return _sample_mushroom(rng)
    raise AssertionError(f"unknown toy class {name}")


def _sample_snowman(rng: np.random.Generator) -> Shape:
    # Two or three stacked balls, each smaller than the one below, overlapping a little.
    radii = [float(rng.uniform(0.42, 0.52))]
    for _ in range(int(rng.integers(1, 3))):
        radii.append(radii[-1] * float(rng.uniform(0.6, 0.78)))
    centres_y = [0.0]
    for below, above in zip(radii[:-1], radii[1:]):
        centres_y.append(centres_y[-1] + 0.85 * (below + above))
    mid = 0.5 * (centres_y[-1] + radii[-1] - radii[0])  # centre the stack vertically
    parts = tuple(Primitive("sphere", (r,), (0.0, y - mid, 0.0)) for r, y in zip(radii, centres_y))
    return Shape("snowman", parts, blend=0.06, extra={"radii": radii})


def _sample_mushroom(rng: np.random.Generator) -> Shape:
    # A stem (rounded cylinder) under a cap (a sphere cut by a horizontal plane), blended at the joint.
    stem_r, stem_h = float(rng.uniform(0.14, 0.26)), float(rng.uniform(0.28, 0.42))
    cap_r = float(rng.uniform(0.55, 0.8))
    cap_height = cap_r * float(rng.uniform(0.35, 0.8))  # height of the dome above its rim
    stem_y = -0.55 + stem_h                              # stem centre (stem bottom at y = -0.55)
    rim_y = stem_y + stem_h * 0.8                        # the cap sits on the top of the stem
    cap_centre_y = rim_y + cap_height - cap_r
    parts = (
        Primitive("cylinder", (stem_r, stem_h, 0.05), (0.0, stem_y, 0.0)),
        Primitive("cut_sphere", (cap_r, rim_y - cap_centre_y), (0.0, cap_centre_y, 0.0)),
    )
    return Shape("mushroom", parts, blend=0.05,
                 extra={"stem_radius": stem_r, "stem_half_height": stem_h, "cap_radius": cap_r})
