"""The camera prior of 3DGP's "ball-in-sphere" camera model (3DGP ref §2.1, §2.2, §8.3, §13).

A camera is the 8-scalar row ``[yaw, pitch, roll, fov_deg, radius, la_yaw, la_pitch, la_radius]`` (angles in
radians, FoV in degrees; column constants in ``stages.nn.rays``). ``CameraPrior`` holds the ranges of the prior
(defaults = the official table, identical for all datasets) and samples it with a torch generator:

* yaw, pitch: ``uniform`` on [min, max] (default) or ``truncnorm`` **centred on the range mid-point** with std
  ``yaw_std`` / ``pitch_std`` [quirk, ref §2.2: the configured mean is ignored for angles]; pitch is then clamped
  to [1e-5, pi - 1e-5].
* fov: ``uniform`` on [fov_min_deg, fov_max_deg] or ``truncnorm`` around ``fov_mean_deg`` (bounded scalars do use
  their mean).
* radius: constant (the official "normal with std 0").
* look-at: spherical-uniform direction (la_yaw ~ U[-pi, pi], la_pitch = arccos(1 - 2v), v ~ U[0, 1] clamped to
  [1e-5, 1 - 1e-5]) and la_radius ~ U[la_radius_min, la_radius_max].

Every distribution is an inverse CDF of one uniform draw, so ``sample`` consumes exactly one ``torch.rand([B, 6])``.
``PRIOR_PRESETS`` holds the default and the README's stability variant (FoV [10, 21]).

Public API:
  CameraPrior(...).sample(batch_size, generator=None, device=None, dtype=torch.float32) -> [B, 8]
  CameraPrior.bounds() -> dict field -> (min, max) used by the camera adaptor's (de)normalisation
  CameraPrior.mean_angles(device, dtype) -> [3] (yaw, pitch, roll) mid-points (force-mean target, ref §2.4b; one
    shared read-only tensor per device and dtype)
  CameraPrior.mean_camera(device, dtype) -> [8] component-wise mean of the prior (ref §1.1, §13)
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from stages.nn import rng
from stages.nn.rays import CAM_FOV, CAM_LA_PITCH, CAM_LA_RADIUS, CAM_LA_YAW, CAM_PITCH, CAM_RADIUS, CAM_YAW

PITCH_EPS = 1e-5  # pitch clamp margin, and the clamp of v in the spherical-uniform look-at (ref §2.2)
LA_YAW_RANGE = (-math.pi, math.pi)  # look-at yaw range used for sampling and (de)normalisation (ref §2.2, §2.3)
LA_PITCH_RANGE = (0.0, math.pi)  # look-at pitch range (ref §2.3 step 4: la_pitch = sigmoid(.) * pi)
DISTRIBUTIONS = ("uniform", "truncnorm")


def _truncnorm_icdf(u: torch.Tensor, mean: float, std: float, low: float, high: float) -> torch.Tensor:
    """Map u ~ U[0, 1) to a normal(mean, std) truncated to [low, high] by inverse CDF (float64 inside)."""
    if std == 0:
        return torch.full_like(u, mean)
    u64 = u.double()
    cdf_low = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    cdf_high = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    p = (cdf_low + u64 * (cdf_high - cdf_low)).clamp(1e-15, 1 - 1e-15)
    x = mean + std * torch.special.ndtri(p)
    return x.clamp(low, high).to(u.dtype)


@functools.lru_cache(maxsize=32)
def _constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A constant tensor built once per device and dtype: the force-mean target is needed at every G step, and
    building it from Python floats is a blocking host-to-device copy each time (issue 18 row 6)."""
    return torch.tensor(values, device=device, dtype=dtype)


@dataclass(frozen=True)
class CameraPrior:
    """Ranges and distributions of the camera prior (3DGP ref §2.2; defaults = the official table)."""

    yaw_min: float = -1.57            # Yaw range, radians (+-90 deg).
    yaw_max: float = 1.57
    pitch_min: float = 0.785398163    # Pitch range, radians from +y (pi/4 .. 3pi/4).
    pitch_max: float = 2.35619449
    fov_min_deg: float = 10.0         # Field-of-view range, degrees (README stability variant: max 21).
    fov_max_deg: float = 45.0
    radius: float = 1.0               # Camera distance from the origin (constant; never learned).
    la_radius_min: float = 0.0        # Look-at ball radius range.
    la_radius_max: float = 0.2
    angle_dist: str = "uniform"       # 'uniform' or 'truncnorm' for yaw and pitch.
    yaw_std: float = 0.4              # truncnorm std of yaw (centred on the range mid-point).
    pitch_std: float = 0.2            # truncnorm std of pitch (centred on the range mid-point).
    fov_dist: str = "uniform"         # 'uniform' or 'truncnorm' for the FoV.
    fov_mean_deg: float = 27.5        # truncnorm mean of the FoV.
    fov_std_deg: float = 5.0          # truncnorm std of the FoV.

    def __post_init__(self):
        for name, low, high in [("yaw", self.yaw_min, self.yaw_max), ("pitch", self.pitch_min, self.pitch_max),
                                ("fov", self.fov_min_deg, self.fov_max_deg),
                                ("la_radius", self.la_radius_min, self.la_radius_max)]:
            if not low <= high:
                raise ValueError(f"camera_{name}: min must not exceed max, got [{low}, {high}]")
        if not (0 < self.fov_min_deg and self.fov_max_deg < 180):
            raise ValueError(f"camera_fov: must lie in (0, 180) degrees, got [{self.fov_min_deg}, "
                                 f"{self.fov_max_deg}]")
        for name in ("angle_dist", "fov_dist"):
            if getattr(self, name) not in DISTRIBUTIONS:
                raise ValueError(f"camera_{name}: must be one of {DISTRIBUTIONS}, got {getattr(self, name)!r}")
        if min(self.yaw_std, self.pitch_std, self.fov_std_deg, self.radius, self.la_radius_min) < 0:
            raise ValueError("camera_prior: standard deviations and radii must be >= 0")

    def bounds(self) -> dict[str, tuple[float, float]]:
        """(min, max) per normalised camera field, as used by the camera adaptor (3DGP ref §2.3 steps 1, 4)."""
        return {
            "yaw": (self.yaw_min, self.yaw_max),
            "pitch": (self.pitch_min, self.pitch_max),
            "fov_deg": (self.fov_min_deg, self.fov_max_deg),
            "la_yaw": LA_YAW_RANGE,
            "la_pitch": LA_PITCH_RANGE,
            "la_radius": (self.la_radius_min, self.la_radius_max),
        }

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draw ``[batch_size, 8]`` prior cameras (3DGP ref §2.2). Roll is 0 and radius is constant."""
        u = rng.rand((batch_size, 6), generator, device, dtype)  # [B, 6], drawn on the generator's device
        # Every uniform column is low + u * span: one multiply and one add for all six (span 1 and low 0 where the
        # column is mapped otherwise below), the same float32 arithmetic as column by column, in ~12 dispatched
        # ops instead of ~34 (the small presets sample cameras 4 times an iteration).
        lows = (self.yaw_min, self.pitch_min, self.fov_min_deg, LA_YAW_RANGE[0], 0.0, self.la_radius_min)
        spans = (self.yaw_max - self.yaw_min, self.pitch_max - self.pitch_min, self.fov_max_deg - self.fov_min_deg,
                 LA_YAW_RANGE[1] - LA_YAW_RANGE[0], 1.0, self.la_radius_max - self.la_radius_min)
        yaw, pitch, fov, la_yaw, v, la_radius = (u * _constant(spans, u.device, dtype)
                                                 + _constant(lows, u.device, dtype)).unbind(1)  # [B] each
        if self.angle_dist != "uniform":  # [quirk] truncnorm angles are centred on the range mid-point
            yaw_mid, pitch_mid = self.mean_angles_list()[:2]
            yaw = _truncnorm_icdf(u[:, 0], yaw_mid, self.yaw_std, self.yaw_min, self.yaw_max)
            pitch = _truncnorm_icdf(u[:, 1], pitch_mid, self.pitch_std, self.pitch_min, self.pitch_max)
        pitch = pitch.clamp(PITCH_EPS, math.pi - PITCH_EPS)
        if self.fov_dist != "uniform":
            fov = _truncnorm_icdf(u[:, 2], self.fov_mean_deg, self.fov_std_deg, self.fov_min_deg, self.fov_max_deg)
        la_pitch = torch.arccos(1.0 - 2.0 * v.clamp(PITCH_EPS, 1.0 - PITCH_EPS))  # spherical-uniform direction
        roll, radius = torch.zeros_like(yaw), torch.full_like(yaw, self.radius)
        camera = torch.stack([yaw, pitch, roll, fov, radius, la_yaw, la_pitch, la_radius], dim=1)  # [B, 8]
        return camera

    def mean_angles_list(self) -> list[float]:
        """[yaw, pitch, roll] range mid-points as floats (3DGP ref §2.4b ``get_mean_angles_values``)."""
        return [(self.yaw_min + self.yaw_max) / 2, (self.pitch_min + self.pitch_max) / 2, 0.0]

    def mean_angles(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        """``[3]`` tensor of the range mid-points of (yaw, pitch, roll): the force-mean target (3DGP ref §2.4b).

        Built once per device and dtype and shared: do not modify it."""
        device = torch.get_default_device() if device is None else torch.device(device)
        return _constant(tuple(self.mean_angles_list()), device, dtype)

    def mean_camera(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        """``[8]`` component-wise mean of the prior (3DGP ref §1.1 ``mean_camera_params``, §13).

        For the default prior: yaw 0, pitch pi/2, roll 0, fov 27.5, radius 1; look-at (0, pi/2, 0.1), i.e. a point
        0.1 in front of the origin (the expectation of each spherical look-at coordinate). Under truncnorm the
        fov entry is the configured ``fov_mean_deg`` (like the official buffer), the angles stay the mid-points.
        """
        fov = (self.fov_min_deg + self.fov_max_deg) / 2 if self.fov_dist == "uniform" else self.fov_mean_deg
        yaw, pitch, roll = self.mean_angles_list()
        values = [yaw, pitch, roll, fov, self.radius, sum(LA_YAW_RANGE) / 2, sum(LA_PITCH_RANGE) / 2,
                  (self.la_radius_min + self.la_radius_max) / 2]
        return torch.tensor(values, device=device, dtype=dtype)


# Named priors: the official default and the README's stability tip (narrower FoV; ref §2.2, §11.1, §12).
PRIOR_PRESETS: dict[str, CameraPrior] = {
    "default": CameraPrior(),
    "narrow_fov": CameraPrior(fov_max_deg=21.0),
}
