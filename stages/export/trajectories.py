"""Camera trajectories for export videos and grids (3DGP ref §8.3, plus a new ``orbit``).

Every trajectory starts from a base camera ``[8]``, normally the mean posterior camera (ref §2.5,
``stages.nn.camera_adaptor.mean_posterior_camera``) with mean yaw y, pitch p and FoV f (degrees). Radius and
look-at are always kept from the base camera. With tau = linspace(0, 1, F):

| name | default F | yaw | pitch | fov |
|---|---|---|---|---|
| ``front_circle`` | 64 | y + 0.5 sin(2 pi tau) | p + 0.3 cos(2 pi tau) | f + 1.0 sin(2 pi tau) |
| ``wiggle`` | 16 | linspace(-1.57, 1.57), absolute | pi/2 + 0.5 cos(2 pi tau), absolute | f |
| ``line`` | 16 | linspace(-1.57, 1.57), absolute | 1.57 | f |
| ``points`` | 3 | y + {-0.5, 0, 0.5} (``linspace(-0.5, 0.5, F)`` for other F) | p | f |
| ``orbit`` | 64 | lo -> hi -> lo inside the learned yaw range (below) | p | f |

Roll is kept from the base camera, except for ``wiggle`` and ``line``, which set it to 0 like the official code
(the base roll is always 0 anyway, ref §2.3 step 4). ``front_circle`` repeats its first camera as its last one
(tau includes 1), as the official code does.

``orbit`` (not in the official code) sweeps the yaw over the range the camera adaptor actually learned, e.g. the
2nd-98th percentiles of posterior yaw samples (``posterior_yaw_range``): frame i of F goes from lo (i = 0) to hi
(i = F // 2) and back, with a cosine ease at both ends, and frame F would be lo again, so the video loops without a
repeated frame. Every yaw lies in [lo, hi], and both ends are reached for F >= 2.

Public API:
  TRAJECTORIES: dict name -> default frame count
  make_trajectory(name, base_camera [8], num_frames=None, yaw_range=None) -> [F, 8]
  posterior_yaw_range(posterior [N, 8], q=0.02) -> (lo, hi)
"""
from __future__ import annotations

import math

import torch

from stages.common.errors import BadOptionError
from stages.nn.camera_prior import CameraPrior
from stages.nn.rays import CAM_FOV, CAM_PITCH, CAM_ROLL, CAM_YAW, CAMERA_DIM

TRAJECTORIES: dict[str, int] = {"front_circle": 64, "wiggle": 16, "line": 16, "points": 3, "orbit": 64}

# Official trajectory settings (ref §8.3, configs/scripts/trajectory/*.yaml).
FRONT_CIRCLE_YAW_DIFF = 0.5       # radians
FRONT_CIRCLE_PITCH_DIFF = 0.3     # radians
FRONT_CIRCLE_FOV_DIFF_DEG = 1.0   # degrees
SWEEP_YAW = (-1.57, 1.57)         # absolute yaw sweep of `wiggle` and `line`
WIGGLE_PITCH_DIFF = 0.5           # radians around pi/2
LINE_PITCH = 1.57                 # constant absolute pitch of `line`
POINTS_YAW_OFFSET = 0.5           # `points`: yaw offsets {-0.5, 0, 0.5}


def _orbit_phase(num_frames: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[F]`` in [0, 1]: 0 at frame 0, 1 at frame F // 2, back towards 0 (frame F would be 0 again), eased."""
    if num_frames == 1:
        return torch.full((1,), 0.5, dtype=dtype, device=device)  # a single frame: the middle of the range
    i = torch.arange(num_frames, dtype=dtype, device=device)
    half = num_frames // 2
    up = i / half  # frames 0 .. half: 0 -> 1
    down = (num_frames - i) / (num_frames - half)  # frames half .. F: 1 -> 0
    u = torch.where(i <= half, up, down)
    return 0.5 - 0.5 * torch.cos(math.pi * u)  # cosine ease: the camera slows down at both ends


def make_trajectory(
    name: str,                    # One of TRAJECTORIES.
    base_camera: torch.Tensor,    # [8] base camera (the mean posterior camera, ref §8.3).
    num_frames: int | None = None,  # Frames F (None = the trajectory's default).
    yaw_range: tuple[float, float] | None = None,  # `orbit` only: (lo, hi) yaw; None = the default prior's range.
) -> torch.Tensor:
    """``[F, 8]`` cameras of trajectory ``name`` around ``base_camera`` (3DGP ref §8.3; module docstring).

    Same dtype and device as ``base_camera``; raises ``BadOptionError`` for an unknown name or F < 1.
    """
    if name not in TRAJECTORIES:
        raise BadOptionError("--trajectory", f"unknown trajectory {name!r} (expected {', '.join(TRAJECTORIES)})")
    num_frames = TRAJECTORIES[name] if num_frames is None else int(num_frames)
    if num_frames < 1:
        raise BadOptionError("--frames", f"must be at least 1, got {num_frames}")
    base = base_camera.detach().reshape(-1)
    assert base.shape == (CAMERA_DIM,), f"base camera must be [{CAMERA_DIM}], got {tuple(base_camera.shape)}"
    f64 = dict(dtype=torch.float64, device=base.device)
    cameras = base.to(torch.float64).unsqueeze(0).repeat(num_frames, 1)  # [F, 8]: radius and look-at kept
    yaw0, pitch0, fov0 = (float(base[k]) for k in (CAM_YAW, CAM_PITCH, CAM_FOV))
    tau = torch.linspace(0.0, 1.0, num_frames, **f64)  # [F]
    wave = 2 * math.pi * tau

    if name == "front_circle":
        yaw = yaw0 + FRONT_CIRCLE_YAW_DIFF * torch.sin(wave)
        pitch = pitch0 + FRONT_CIRCLE_PITCH_DIFF * torch.cos(wave)
        fov = fov0 + FRONT_CIRCLE_FOV_DIFF_DEG * torch.sin(wave)
    elif name == "wiggle":
        yaw = torch.linspace(*SWEEP_YAW, num_frames, **f64)
        pitch = math.pi / 2 + WIGGLE_PITCH_DIFF * torch.cos(wave)
        fov = torch.full_like(tau, fov0)
        cameras[:, CAM_ROLL] = 0.0
    elif name == "line":
        yaw = torch.linspace(*SWEEP_YAW, num_frames, **f64)
        pitch = torch.full_like(tau, LINE_PITCH)
        fov = torch.full_like(tau, fov0)
        cameras[:, CAM_ROLL] = 0.0
    elif name == "points":
        yaw = yaw0 + torch.linspace(-POINTS_YAW_OFFSET, POINTS_YAW_OFFSET, num_frames, **f64)
        if num_frames == 1:
            yaw = torch.full_like(tau, yaw0)  # linspace(a, b, 1) = [a]: the centre view makes more sense
        pitch = torch.full_like(tau, pitch0)
        fov = torch.full_like(tau, fov0)
    else:  # orbit
        lo, hi = CameraPrior().bounds()["yaw"] if yaw_range is None else (float(yaw_range[0]), float(yaw_range[1]))
        assert lo <= hi, f"yaw range must have lo <= hi, got ({lo}, {hi})"
        yaw = (lo + (hi - lo) * _orbit_phase(num_frames, **f64)).clamp(lo, hi)
        pitch = torch.full_like(tau, pitch0)
        fov = torch.full_like(tau, fov0)

    cameras[:, CAM_YAW] = yaw
    cameras[:, CAM_PITCH] = pitch
    cameras[:, CAM_FOV] = fov
    return cameras.to(base.dtype)  # [F, 8]


def posterior_yaw_range(posterior: torch.Tensor, q: float = 0.02) -> tuple[float, float]:
    """(q, 1 - q) quantiles of the yaw of posterior cameras ``[N, 8]``: the yaw range ``orbit`` sweeps."""
    assert posterior.ndim == 2 and posterior.shape[1] == CAMERA_DIM, tuple(posterior.shape)
    assert 0.0 <= q < 0.5, q
    yaw = posterior[:, CAM_YAW].detach().double().cpu()
    lo, hi = torch.quantile(yaw, torch.tensor([q, 1.0 - q], dtype=torch.float64)).tolist()
    return float(lo), float(hi)
