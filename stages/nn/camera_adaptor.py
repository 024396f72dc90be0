"""The camera adaptor ("camera generator"): prior camera, z, c -> posterior camera (3DGP ref §2.3, §2.5, §8.3).

Two ``ParamsAdaptor`` MLPs (equalized-lr FC layers, softplus activations, lr multiplier 0.1, hidden 256,
z/c embeddings 16-d normalised by their second moment):

1. The prior sample is normalised to [0, 1] per parameter with the prior's ranges (roll and radius are passed
   through unnormalised).
2. The **origin adaptor** (no z: the origin depends only on the prior sample and the class) maps
   [yaw_n, pitch_n, roll, radius] to 4 logits (yaw', pitch', roll', radius').
3. The **look-at adaptor** (with z) maps [yaw', pitch', roll', fov_n, radius', la_yaw_n, la_pitch_n, la_r_n] --
   the LOGITS of step 2, not their squashed values -- to 4 logits (fov', la_yaw', la_pitch', la_r').
4. Denormalisation squashes the logits with a sigmoid into the prior box; roll is 0; the radius is the prior's
   (``adjust.radius`` is off; "+ 0 * logit" keeps the logit in the graph). [quirk/bug] The official code scales
   la_radius with the look-at PITCH minimum (0) instead of the radius minimum; reproduced when
   ``la_radius_quirk=True`` (the default; identical results unless ``la_radius_min > 0``).

**Residual mode** (``residual=True``; ours, not the official code's, whose ``residual: false`` is the default): each
adaptor's logits are added to the logits of the normalised prior sample (``logit(yaw_n)``, ``logit(pitch_n)``,
``logit(fov_n)``, ...; clamped to [1e-4, 1 - 1e-4]) and the last layer of both MLPs starts at zero, so at
initialisation the posterior IS the prior and training moves it from there. The official adaptor instead maps the
whole prior to nearly one camera at initialisation, and only the slowly annealed EMD term spreads it again
(measurements §1): fine for 25,000-kimg runs, fatal for short ones (the demo). Same parameters, same checkpoints.

Parameter counts (ref §14): 149,528 = 68,100 (origin) + 81,428 (look-at) for c_dim 0; 189,752 = 88,212 + 101,540
for c_dim 1000. ``enabled=False`` is the fixed-prior ablation: the prior camera passes through unchanged.

Public API:
  CameraAdaptor(c_dim, z_dim=512, hid_dim=256, embed_dim=16, lr_multiplier=0.1, prior=CameraPrior(),
                enabled=True, la_radius_quirk=True, residual=False)(prior_camera [B, 8], z [B, z_dim], c [B, c_dim] | None) -> [B, 8]
  mean_posterior_camera(adaptor, prior, z_dim, c_dim, n=1024, generator=None, device=None) -> [8]
"""
from __future__ import annotations

import math

import torch
from torch import nn

from stages.nn.camera_prior import PITCH_EPS, CameraPrior
from stages.nn.inputs import sample_generator_inputs
from stages.nn.layers import FullyConnectedLayer, normalize_2nd_moment
from stages.nn.rays import (
    CAM_FOV, CAM_LA_PITCH, CAM_LA_RADIUS, CAM_LA_YAW, CAM_PITCH, CAM_RADIUS, CAM_ROLL, CAM_YAW, CAMERA_DIM,
)

NORM_EPS = 1e-8  # added to (max - min) when normalising a prior sample (ref §2.3 step 1)
LOGIT_CLAMP = 1e-4  # residual mode: normalised prior values are clamped to [eps, 1 - eps] before the logit


class ParamsAdaptor(nn.Module):
    """One adaptor MLP: softplus-FC(in -> hid), optional z / c embeddings, softplus-FC, linear FC (3DGP ref §2.3)."""

    def __init__(
        self,
        in_dim: int,                # Number of input scalars.
        out_dim: int,               # Number of output logits.
        z_dim: int,                 # Latent size; 0 = this adaptor does not see z.
        c_dim: int,                 # Class-label size; 0 = unconditional.
        hid_dim: int = 256,         # Hidden width.
        embed_dim: int = 16,        # Size of the z and c embeddings.
        lr_multiplier: float = 0.1,  # Learning-rate multiplier of every FC layer.
    ):
        super().__init__()
        fc = dict(activation="softplus", lr_multiplier=lr_multiplier)
        self.input_fc = FullyConnectedLayer(in_dim, hid_dim, **fc)
        self.z_embed = FullyConnectedLayer(z_dim, embed_dim, **fc) if z_dim > 0 else None
        self.c_embed = FullyConnectedLayer(c_dim, embed_dim, **fc) if c_dim > 0 else None
        mid_dim = hid_dim + embed_dim * ((z_dim > 0) + (c_dim > 0))
        self.hidden_fc = FullyConnectedLayer(mid_dim, hid_dim, **fc)
        self.output_fc = FullyConnectedLayer(hid_dim, out_dim, activation="linear", lr_multiplier=lr_multiplier)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        parts = [self.input_fc(x)]  # [B, hid]
        if self.z_embed is not None:
            parts.append(normalize_2nd_moment(self.z_embed(z)))  # [B, embed]
        if self.c_embed is not None:
            parts.append(normalize_2nd_moment(self.c_embed(c)))  # [B, embed]
        return self.output_fc(self.hidden_fc(torch.cat(parts, dim=1)))  # [B, out]


class CameraAdaptor(nn.Module):
    """Learned map from a prior camera (and z, c) to a posterior camera inside the prior box (3DGP ref §2.3)."""

    def __init__(
        self,
        c_dim: int,                 # Class-label size (0 = unconditional, 1000 for ImageNet).
        z_dim: int = 512,           # Latent size; z is the raw latent, not w.
        hid_dim: int = 256,         # Hidden width of both adaptor MLPs.
        embed_dim: int = 16,        # Size of the z and c embeddings.
        lr_multiplier: float = 0.1,  # Learning-rate multiplier of every FC layer.
        prior: CameraPrior = CameraPrior(),  # Ranges for (de)normalisation.
        enabled: bool = True,       # False = fixed-prior ablation: return the prior camera unchanged.
        la_radius_quirk: bool = True,  # Scale la_radius with the look-at pitch minimum (official bug).
        residual: bool = False,     # Start at the identity: logits added to the prior's (module docstring).
    ):
        super().__init__()
        self.c_dim = c_dim
        self.z_dim = z_dim
        self.prior = prior
        self.enabled = enabled
        self.la_radius_quirk = la_radius_quirk
        if enabled:
            kw = dict(c_dim=c_dim, hid_dim=hid_dim, embed_dim=embed_dim, lr_multiplier=lr_multiplier)
            self.origin_adaptor = ParamsAdaptor(4, 4, z_dim=0, **kw)
            self.look_at_adaptor = ParamsAdaptor(8, 4, z_dim=z_dim, **kw)
        self.residual = residual and enabled
        if self.residual:
            for adaptor in (self.origin_adaptor, self.look_at_adaptor):
                nn.init.zeros_(adaptor.output_fc.weight)
                nn.init.zeros_(adaptor.output_fc.bias)

    def _normalize(self, camera: torch.Tensor) -> torch.Tensor:
        """Map each prior parameter to [0, 1] with its prior range; roll and radius stay raw (ref §2.3 step 1)."""
        bounds = self.prior.bounds()
        columns = {"yaw": CAM_YAW, "pitch": CAM_PITCH, "fov_deg": CAM_FOV, "la_yaw": CAM_LA_YAW,
                   "la_pitch": CAM_LA_PITCH, "la_radius": CAM_LA_RADIUS}
        low, scale = [0.0] * CAMERA_DIM, [1.0] * CAMERA_DIM  # roll and radius: (x - 0) / 1, exactly x
        for name, col in columns.items():
            low[col] = float(bounds[name][0])
            scale[col] = float(bounds[name][1]) - low[col] + NORM_EPS
        table = torch.tensor([low, scale], dtype=camera.dtype).to(camera.device, non_blocking=True)  # [2, 8]
        return (camera - table[0]) / table[1]  # [B, 8]: three ops instead of four per column

    def _denormalize(self, origin_logits, look_at_logits, prior_camera) -> torch.Tensor:
        """Squash the logits into the prior box (ref §2.3 steps 4, 5)."""
        bounds = self.prior.bounds()
        (yaw_lo, yaw_hi), (pitch_lo, pitch_hi) = bounds["yaw"], bounds["pitch"]
        (fov_lo, fov_hi), (la_r_lo, la_r_hi) = bounds["fov_deg"], bounds["la_radius"]
        if self.la_radius_quirk:  # [quirk/bug] the look-at pitch minimum stands in for the radius minimum
            la_r_lo = bounds["la_pitch"][0]
        o, la = torch.sigmoid(origin_logits), torch.sigmoid(look_at_logits)  # [B, 4] each
        yaw = o[:, 0] * (yaw_hi - yaw_lo) + yaw_lo
        pitch = o[:, 1] * (pitch_hi - pitch_lo - 2 * PITCH_EPS) + pitch_lo + PITCH_EPS
        roll = torch.zeros_like(yaw)
        radius = prior_camera[:, CAM_RADIUS] + 0.0 * origin_logits[:, 3]  # adjust.radius is off
        fov = la[:, 0] * (fov_hi - fov_lo) + fov_lo
        la_yaw = la[:, 1] * (2 * math.pi) - math.pi
        la_pitch = la[:, 2] * math.pi
        la_radius = la[:, 3] * (la_r_hi - la_r_lo) + la_r_lo
        return torch.stack([yaw, pitch, roll, fov, radius, la_yaw, la_pitch, la_radius], dim=1)  # [B, 8]

    def forward(self, prior_camera: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior cameras ``[B, 8]`` from prior cameras ``[B, 8]``, latents ``[B, z_dim]``, one-hot ``c``."""
        assert prior_camera.ndim == 2 and prior_camera.shape[1] == CAMERA_DIM, "prior_camera must be [B, 8]"
        if not self.enabled:
            return prior_camera
        assert (c is not None) == (self.c_dim > 0), "pass c exactly when c_dim > 0"
        normed = self._normalize(prior_camera)  # [B, 8]
        origin_in = normed[:, [CAM_YAW, CAM_PITCH, CAM_ROLL, CAM_RADIUS]]  # [B, 4]
        origin_logits = self.origin_adaptor(origin_in, None, c)  # [B, 4] (yaw', pitch', roll', radius')
        if self.residual:
            origin_logits = origin_logits + torch.cat([_logit(normed[:, [CAM_YAW, CAM_PITCH]]),
                                                       torch.zeros_like(origin_logits[:, 2:])], dim=1)
        look_at_in = torch.cat([
            origin_logits[:, :3],
            normed[:, CAM_FOV:CAM_FOV + 1],
            origin_logits[:, 3:4],
            normed[:, CAM_LA_YAW:],
        ], dim=1)  # [B, 8] in the camera layout, origin part = logits
        look_at_logits = self.look_at_adaptor(look_at_in, z, c)  # [B, 4] (fov', la_yaw', la_pitch', la_r')
        if self.residual:
            look_at_logits = look_at_logits + _logit(normed[:, [CAM_FOV, CAM_LA_YAW, CAM_LA_PITCH, CAM_LA_RADIUS]])
        return self._denormalize(origin_logits, look_at_logits, prior_camera)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, z_dim={self.z_dim}, enabled={self.enabled}, residual={self.residual}"


def _logit(p: torch.Tensor) -> torch.Tensor:
    """Inverse sigmoid of normalised prior values (clamped away from 0 and 1)."""
    return torch.logit(p.clamp(LOGIT_CLAMP, 1 - LOGIT_CLAMP))


@torch.no_grad()
def mean_posterior_camera(
    adaptor: CameraAdaptor,
    prior: CameraPrior,
    z_dim: int,
    c_dim: int,
    n: int = 1024,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Component-wise mean of ``n`` posterior cameras with random z and uniform classes (3DGP ref §2.5, §8.3).

    The spherical look-at coordinates are averaged component-wise too, like the official code. Returns ``[8]``.
    """
    inputs = sample_generator_inputs(n, z_dim, c_dim, prior, generator=generator, device=device)  # uniform classes
    return adaptor(inputs.camera_prior, inputs.z, inputs.c).mean(dim=0)  # [8]
