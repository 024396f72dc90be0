"""The camera model: layout, prior, adaptor and the regularizers that keep the adaptor from collapsing.

This module is the single import point for camera code (3DGP ref §2): it re-exports the 8-scalar layout
(``stages.nn.rays``), ``CameraPrior`` (``stages.nn.camera_prior``), ``CameraAdaptor`` and
``mean_posterior_camera`` (``stages.nn.camera_adaptor``), and defines the regularizers of ref §2.4:

* ``emd_1d_squared(q, p)``: the exact optimal-transport cost between two 1-D empirical distributions with N
  equally weighted points each and squared-distance ground cost (POT's ``emd2`` on ``ot.dist``), i.e. the squared
  2-Wasserstein distance (1/N) sum_i (sort(q)_i - sort(p)_i)^2. Its gradient equals POT's (the optimal plan).
* ``camera_emd_loss(posterior, prior, weights)``: sum_k weight_k * W_k over the 8 raw (unnormalised) camera
  parameters with the official weights 2.0 (yaw, pitch), 0 (roll, radius), 1e-4 (fov in degrees, look-at). The
  ramp m(t) = lin(t; 0 -> 1 over 10000 kimg) is the caller's (``stages.train``) business.
* ``force_mean_loss(posterior, mean_angles)``: 10 * || mean_batch(yaw, pitch, roll) - mean_angles + 1e-8 ||_2,
  an L2 norm, not squared (ref §2.4b).
"""
from __future__ import annotations

import functools

import torch

from stages.nn.camera_adaptor import CameraAdaptor, ParamsAdaptor, mean_posterior_camera
from stages.nn.camera_prior import PRIOR_PRESETS, CameraPrior
from stages.nn.rays import CAMERA_DIM, CAMERA_FIELDS

__all__ = [
    "CAMERA_DIM",
    "CAMERA_FIELDS",
    "EMD_WEIGHTS",
    "FORCE_MEAN_WEIGHT",
    "PRIOR_PRESETS",
    "CameraAdaptor",
    "CameraPrior",
    "ParamsAdaptor",
    "camera_emd_loss",
    "camera_emd_per_param",
    "emd_1d_squared",
    "force_mean_loss",
    "mean_posterior_camera",
]

# Per-parameter EMD weights in camera layout order (ref §2.4a: emd.origin 2.0, radius 0.0, fov 1e-4,
# look_at 1e-4; roll is excluded).
EMD_WEIGHTS = (2.0, 2.0, 0.0, 1e-4, 0.0, 1e-4, 1e-4, 1e-4)
FORCE_MEAN_WEIGHT = 10.0  # force_mean_weight (ref §2.4b)
FORCE_MEAN_EPS = 1e-8  # added inside the norm (ref §2.4b)


def emd_1d_squared(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between two 1-D empirical distributions of N points (3DGP ref §2.4a).

    Args:
        q, p: ``[N]`` samples (equal weights 1/N each).
    Returns:
        Scalar (1/N) sum_i (sort(q)_i - sort(p)_i)^2, differentiable w.r.t. both inputs.
    """
    assert q.ndim == 1 and q.shape == p.shape, f"need two [N] tensors, got {list(q.shape)} and {list(p.shape)}"
    return (torch.sort(q).values - torch.sort(p).values).square().mean()


def camera_emd_per_param(posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``[8]`` squared W2 distances between the posterior and prior marginals of each raw camera parameter."""
    assert posterior.ndim == 2 and posterior.shape[1] == CAMERA_DIM and posterior.shape == prior.shape
    q = torch.sort(posterior, dim=0).values  # [N, 8]
    p = torch.sort(prior, dim=0).values  # [N, 8]
    return (q - p).square().mean(dim=0)  # [8]


def camera_emd_loss(
    posterior: torch.Tensor,
    prior: torch.Tensor,
    weights: tuple[float, ...] | torch.Tensor = EMD_WEIGHTS,
) -> torch.Tensor:
    """Weighted sum of per-parameter EMDs between posterior ``[N, 8]`` and prior ``[N, 8]`` (3DGP ref §2.4a).

    Units are raw: radians, degrees for fov, world units. Returns a scalar; multiply by m(t) outside.
    """
    if isinstance(weights, torch.Tensor):
        weights = weights.to(dtype=posterior.dtype, device=posterior.device)  # [8]
    else:
        weights = _weights_on(tuple(float(w) for w in weights), posterior.device, posterior.dtype)  # [8]
    return (camera_emd_per_param(posterior, prior) * weights).sum()


@functools.lru_cache(maxsize=16)
def _weights_on(weights: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The EMD weights as a tensor, built once per device and dtype: from Python floats it is a blocking
    host-to-device copy at every G step (issue 18 row 6)."""
    return torch.tensor(weights, dtype=dtype, device=device)


def force_mean_loss(
    posterior: torch.Tensor,
    mean_angles: torch.Tensor,
    weight: float = FORCE_MEAN_WEIGHT,
) -> torch.Tensor:
    """weight * || mean over the batch of (yaw, pitch, roll) - mean_angles + 1e-8 ||_2 (3DGP ref §2.4b).

    Args:
        posterior: ``[N, 8]`` posterior cameras.
        mean_angles: ``[3]`` target (``CameraPrior.mean_angles()``: the prior range mid-points).
    """
    batch_mean = posterior[:, :3].mean(dim=0)  # [3]
    return weight * torch.linalg.vector_norm(batch_mean - mean_angles.to(posterior) + FORCE_MEAN_EPS)
