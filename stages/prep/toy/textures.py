"""Procedural textures for the toy renderer: object patterns, ground and wall materials, and the sky.

Every pattern is a blend weight ``w`` in [0, 1] between two colours, evaluated at surface points. Patterns are
pre-filtered: ``blur`` (the pixel footprint divided by the pattern period) fades them towards their mean, so
distant checkerboards turn grey instead of aliasing (a cheap stand-in for mip-mapping). Colours are linear RGB.
"""
from __future__ import annotations

import numpy as np

from stages.prep.toy.scene import Backdrop, Light, SurfaceLook


def _mix(a, b, w: np.ndarray) -> np.ndarray:
    """Per-point blend of two colours: (1 - w) * a + w * b -> [N, 3]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a + (b - a) * w[:, None]


def _prefilter(w: np.ndarray, mean: float, blur: np.ndarray) -> np.ndarray:
    # Fade a pattern towards its mean once the pixel footprint approaches the period (no moire).
    keep = np.clip(1.6 - 2.0 * blur, 0.0, 1.0)
    return mean + (w - mean) * keep


def _soft_step(x: np.ndarray, sharpness: float = 6.0) -> np.ndarray:
    # A soft square wave from a sine-like signal in [-1, 1]: edges stay anti-aliased at low resolution.
    return np.clip(0.5 + sharpness * x, 0.0, 1.0)


def _noise(p: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """Smooth pseudo-noise in [-1, 1]: mean of random plane waves ``waves`` [K, 4] at points ``p`` [N, 3]."""
    if len(waves) == 0:
        return np.zeros(len(p))
    return np.sin(p @ waves[:, :3].T + waves[:, 3]).mean(axis=1) * np.sqrt(2.0)


def _hash2(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """A per-cell random number in [0, 1) from integer cell coordinates (the classic sine hash)."""
    x = np.sin(i * 12.9898 + j * 78.233) * 43758.5453
    return x - np.floor(x)


def object_albedo(q: np.ndarray, look: SurfaceLook, blur: np.ndarray) -> np.ndarray:
    """Albedo [N, 3] of the object at object-frame points ``q`` [N, 3]; ``blur`` = footprint / period [N]."""
    s = q / look.period
    axis = np.asarray(look.axis)
    noise = _noise(q, look.waves)
    if look.pattern == "stripes":
        w = _prefilter(_soft_step(np.sin(2 * np.pi * (s @ axis))), 0.5, blur)
    elif look.pattern == "checker":
        w = _prefilter(_soft_step(np.prod(np.sin(np.pi * s), axis=1), 12.0), 0.5, blur)
    elif look.pattern == "dots":
        dist = np.linalg.norm(s - np.round(s), axis=1)  # distance to the nearest lattice point, in periods
        w = _prefilter(np.clip((0.32 - dist) * 12.0 + 0.5, 0.0, 1.0), 0.15, blur)
    elif look.pattern == "marble":
        w = 0.5 + 0.5 * np.sin(2 * np.pi * (s @ axis) + 2.5 * noise)
        w = _prefilter(w ** 1.5, 0.4, blur * 0.5)
    else:  # solid: a faint mottling only
        w = 0.12 * (noise + 1.0)
    return _mix(look.color_a, look.color_b, w) * (1.0 + 0.06 * noise[:, None])


def ground_albedo(p: np.ndarray, look: SurfaceLook, blur: np.ndarray) -> np.ndarray:
    """Albedo [N, 3] of the ground plane at world points ``p`` [N, 3] (y = 0); ``blur`` = footprint / period."""
    ax, az = look.axis[0], look.axis[2]
    u = (p[:, 0] * ax + p[:, 2] * az) / look.period     # along the pattern axis, in periods
    v = (-p[:, 0] * az + p[:, 2] * ax) / look.period    # across it
    noise = _noise(p, look.waves)
    if look.pattern == "checker":
        w = _prefilter(_soft_step(np.sin(np.pi * u) * np.sin(np.pi * v), 10.0), 0.5, blur)
    elif look.pattern == "planks":
        row = np.floor(v * 2.0)
        tone = _hash2(row, np.floor(u * 0.5 + _hash2(row, row) * 4.0))    # each plank its own shade
        grain = 0.5 + 0.5 * np.sin(25.0 * v + 3.0 * noise)
        gap = np.clip(np.abs(v * 2.0 - np.round(v * 2.0)) * 14.0, 0.0, 1.0)  # dark seams between planks
        w = _prefilter(0.6 * tone + 0.25 * grain + 0.6 * (1.0 - gap), 0.55, blur)
    elif look.pattern == "tiles":
        tone = _hash2(np.floor(u), np.floor(v))
        grout = np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v)))
        w = _prefilter(0.3 * tone + (grout < 0.04) * 0.9, 0.2, blur)
    elif look.pattern == "grass":
        fine = _noise(p * 3.1, look.waves)
        w = np.clip(0.5 + 0.45 * noise + 0.25 * _prefilter(fine, 0.0, blur / 3.0), 0.0, 1.0)
    else:  # sand: gentle ripples warped by noise
        w = 0.5 + 0.3 * _prefilter(np.sin(2 * np.pi * u * 1.5 + 2.0 * noise), 0.0, blur * 1.5) + 0.2 * noise
    return _mix(look.color_a, look.color_b, np.clip(w, 0.0, 1.0))


def wall_albedo(p: np.ndarray, normal: np.ndarray, look: SurfaceLook, blur: np.ndarray) -> np.ndarray:
    """Albedo [N, 3] of a vertical wall with unit ``normal`` [3] at world points ``p`` [N, 3]."""
    across = np.array([normal[2], 0.0, -normal[0]])       # horizontal direction along the wall
    u, v = (p @ across) / look.period, p[:, 1] / look.period
    noise = _noise(p, look.waves)
    if look.pattern == "bricks":
        row = np.floor(v * 2.0)
        uu = u + 0.5 * (row % 2)                            # running bond: odd rows shifted half a brick
        tone = _hash2(row, np.floor(uu))
        mortar = (np.abs(v * 2.0 - np.round(v * 2.0)) < 0.08) | (np.abs(uu - np.round(uu)) < 0.04)
        w = _prefilter(0.35 * tone + 0.15 * noise + 0.8 * mortar, 0.25, blur)
    elif look.pattern == "stripes":
        w = _prefilter(_soft_step(np.sin(2 * np.pi * u), 4.0), 0.5, blur) * 0.8 + 0.1 * noise
    else:  # plaster: soft blotches, darker towards the floor
        w = 0.35 + 0.25 * noise + 0.25 * np.exp(-np.maximum(p[:, 1], 0.0) / look.period)
    return _mix(look.color_a, look.color_b, np.clip(w, 0.0, 1.0))


def sky_radiance(d: np.ndarray, backdrop: Backdrop, light: Light) -> np.ndarray:
    """Sky colour [N, 3] for unit ray directions ``d`` [N, 3]: gradient, sun glow and soft clouds."""
    up = np.clip(d[:, 1], 0.0, 1.0)
    rgb = _mix(backdrop.sky_horizon, backdrop.sky_zenith, np.sqrt(up))
    sun_dot = np.clip(d @ np.asarray(light.direction), 0.0, 1.0)
    rgb = rgb + np.asarray(light.sun_color) * (0.6 * sun_dot ** 300 + 0.12 * sun_dot ** 6)[:, None]
    if backdrop.clouds > 0.0:
        plane = d / np.maximum(d[:, 1:2], 0.08) * 2.0       # project onto a cloud layer above the camera
        plane[:, 1] = 0.0
        waves = np.array([[1.3, 0.0, 0.4, 0.3], [-0.5, 0.0, 1.1, 1.7], [0.9, 0.0, -1.2, 4.1], [2.7, 0.0, 1.9, 2.2]])
        cover = np.clip((_noise(plane, waves) + 1.2 * backdrop.clouds - 0.9) * 2.0, 0.0, 1.0)
        cover *= np.clip(up * 6.0, 0.0, 1.0) * backdrop.clouds
        rgb = _mix(rgb, np.ones(3) * 0.92, cover) if len(rgb) else rgb
    return rgb
