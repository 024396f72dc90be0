"""Export camera trajectories (stages.export.trajectories; 3DGP ref §8.3)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.common.errors import BadOptionError
from stages.export.trajectories import TRAJECTORIES, make_trajectory, posterior_yaw_range
from stages.nn.rays import CAM_FOV, CAM_LA_PITCH, CAM_LA_RADIUS, CAM_LA_YAW, CAM_PITCH, CAM_RADIUS, CAM_ROLL, \
    CAM_YAW

# A base camera away from the prior's mid-points, so that "relative" and "absolute" formulas differ.
BASE = {CAM_YAW: 0.2, CAM_PITCH: 1.4, CAM_ROLL: 0.0, CAM_FOV: 18.0, CAM_RADIUS: 1.0, CAM_LA_YAW: 0.7,
        CAM_LA_PITCH: 1.1, CAM_LA_RADIUS: 0.05}
KEPT = (CAM_RADIUS, CAM_LA_YAW, CAM_LA_PITCH, CAM_LA_RADIUS)


@pytest.fixture
def base() -> torch.Tensor:
    camera = torch.zeros(8, dtype=torch.float64)
    for column, value in BASE.items():
        camera[column] = value
    return camera


def _expected(name: str, tau: float, i: int) -> tuple[float, float, float]:
    """(yaw, pitch, fov) of frame i at tau = i / (F - 1), straight from the table of ref §8.3."""
    y, p, f = BASE[CAM_YAW], BASE[CAM_PITCH], BASE[CAM_FOV]
    w = 2 * math.pi * tau
    if name == "front_circle":
        return y + 0.5 * math.sin(w), p + 0.3 * math.cos(w), f + 1.0 * math.sin(w)
    if name == "wiggle":
        return -1.57 + 3.14 * tau, math.pi / 2 + 0.5 * math.cos(w), f
    if name == "line":
        return -1.57 + 3.14 * tau, 1.57, f
    assert name == "points"
    return y + (-0.5, 0.0, 0.5)[i], p, f


@pytest.mark.parametrize("name", ["front_circle", "wiggle", "line", "points"])
def test_official_trajectories_match_reference_formulas(name, base):
    cams = make_trajectory(name, base)
    num_frames = TRAJECTORIES[name]
    assert cams.shape == (num_frames, 8) and cams.dtype == base.dtype
    for i in range(num_frames):
        yaw, pitch, fov = _expected(name, i / (num_frames - 1), i)
        assert float(cams[i, CAM_YAW]) == pytest.approx(yaw, abs=1e-9), (name, i)
        assert float(cams[i, CAM_PITCH]) == pytest.approx(pitch, abs=1e-9), (name, i)
        assert float(cams[i, CAM_FOV]) == pytest.approx(fov, abs=1e-9), (name, i)
    for column in KEPT:  # radius and look-at are the base camera's
        assert torch.equal(cams[:, column], base[column].expand(num_frames))
    assert torch.all(cams[:, CAM_ROLL] == 0)


def test_default_frame_counts_and_override(base):
    assert TRAJECTORIES == {"front_circle": 64, "wiggle": 16, "line": 16, "points": 3, "orbit": 64}
    assert make_trajectory("front_circle", base, num_frames=32).shape == (32, 8)
    cams = make_trajectory("front_circle", base.float())
    assert cams.dtype == torch.float32
    assert torch.allclose(cams[0], cams[-1])  # tau includes 1: the official loop repeats its first camera


@pytest.mark.parametrize("num_frames", [64, 17, 2])
def test_orbit_stays_inside_the_range_and_reaches_both_ends(base, num_frames):
    lo, hi = -0.6, 0.9
    cams = make_trajectory("orbit", base, num_frames=num_frames, yaw_range=(lo, hi))
    yaw = cams[:, CAM_YAW]
    assert cams.shape == (num_frames, 8)
    assert float(yaw.min()) >= lo and float(yaw.max()) <= hi
    assert float(yaw[0]) == pytest.approx(lo, abs=1e-12)
    assert float(yaw[num_frames // 2]) == pytest.approx(hi, abs=1e-12)
    assert torch.all(cams[:, CAM_PITCH] == BASE[CAM_PITCH]) and torch.all(cams[:, CAM_FOV] == BASE[CAM_FOV])
    for column in KEPT:
        assert torch.equal(cams[:, column], base[column].expand(num_frames))
    if num_frames >= 4:  # lo -> hi is monotone, hi -> lo too, and the loop does not repeat a frame
        half = num_frames // 2
        assert torch.all(yaw[1:half + 1] > yaw[:half]) and torch.all(yaw[half + 1:] < yaw[half:-1])
        assert float(yaw[-1]) > lo


def test_orbit_defaults_to_the_prior_yaw_range(base):
    yaw = make_trajectory("orbit", base)[:, CAM_YAW]
    assert float(yaw.min()) == pytest.approx(-1.57) and float(yaw.max()) == pytest.approx(1.57)


def test_unknown_trajectory_is_a_one_line_option_error(base):
    with pytest.raises(BadOptionError) as info:
        make_trajectory("spiral", base)
    assert str(info.value) == ("--trajectory: unknown trajectory 'spiral' "
                               "(expected front_circle, wiggle, line, points, orbit)")
    with pytest.raises(BadOptionError):
        make_trajectory("line", base, num_frames=0)


def test_posterior_yaw_range_is_the_quantile_range():
    posterior = torch.zeros(1001, 8)
    posterior[:, CAM_YAW] = torch.linspace(-1.0, 1.0, 1001)[torch.randperm(1001)]
    lo, hi = posterior_yaw_range(posterior, q=0.02)
    assert lo == pytest.approx(-0.96, abs=1e-6) and hi == pytest.approx(0.96, abs=1e-6)
    assert posterior_yaw_range(posterior, q=0.0) == pytest.approx((-1.0, 1.0))
