"""Generator inputs: the one sampler of z, classes and prior cameras (3DGP ref §5.1, §6.3, §6.5, §8).

Training, the metrics (``stages.metrics``) and export all draw their generator inputs here, so a fake image means
the same thing everywhere:

* ``z ~ N(0, I)`` ``[n, z_dim]``;
* classes: one-hot ``[n, c_dim]`` drawn from the dataset's label distribution ``label_probs`` (ref §6.3: "the label
  of a random dataset item"), uniform when ``label_probs`` is None, or given ``labels``; None when unconditional;
* cameras: prior samples ``[n, 8]`` (ref §2.2); ``frontal=True`` sets yaw 0 and pitch pi/2 and keeps FoV and look-at
  from the prior (ref §6.5; the camera adaptor is still applied by G afterwards, the official quirk).

Draw order is fixed (z, classes, cameras) and every draw uses ``generator`` when given (any device, see
``stages.nn.rng``), else the global RNG, so a seeded ``torch.Generator`` reproduces the same inputs on any device.
Without a generator (training) everything is drawn on ``device`` itself, from a class distribution kept there
(built once per device), so a micro-batch costs no host-to-device copy (issue 18 row 6).

Public API:
  GeneratorInputs(z [n, z_dim], c [n, c_dim] | None, camera_prior [n, 8], labels [n] int64 | None)
  sample_generator_inputs(n, z_dim, c_dim, prior, *, label_probs=None, labels=None, frontal=False, generator=None,
                          device=None) -> GeneratorInputs
  one_hot(labels [n], c_dim) -> [n, c_dim] float | None
  make_generator(seed, device="cpu") -> torch.Generator
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from stages.nn import rng
from stages.nn.rays import CAM_PITCH, CAM_YAW

FRONTAL_YAW = 0.0  # ref §6.5: the NFS "frontal" camera before the adaptor
FRONTAL_PITCH = math.pi / 2


@dataclass
class GeneratorInputs:
    """One batch of generator inputs (what ``G(z, c, camera_prior)`` takes)."""

    z: torch.Tensor  # [n, z_dim]
    c: torch.Tensor | None  # [n, c_dim] one-hot, None when unconditional
    camera_prior: torch.Tensor  # [n, 8] prior cameras (G applies the adaptor)
    labels: torch.Tensor | None  # [n] int64 class ids, None when unconditional

    def __len__(self) -> int:
        return self.z.shape[0]


def one_hot(labels: torch.Tensor, c_dim: int) -> torch.Tensor | None:
    """One-hot ``[n, c_dim]`` float from int labels ``[n]`` (negative = unlabelled -> class 0), None if c_dim == 0."""
    if c_dim == 0:
        return None
    return torch.nn.functional.one_hot(labels.long().clamp(min=0), c_dim).float()


@functools.lru_cache(maxsize=16)
def _cached_class_weights(c_dim: int, probs_float64: bytes | None, device: torch.device) -> torch.Tensor:
    """``[1, c_dim]`` float32 class weights on ``device`` (uniform for None), built once per distribution and
    device. Callers must not modify it."""
    probs = torch.ones(c_dim) if probs_float64 is None else torch.from_numpy(np.frombuffer(probs_float64).copy())
    assert probs.shape == (c_dim,), f"label_probs must be [{c_dim}], got {tuple(probs.shape)}"
    return probs.float().view(1, c_dim).to(device)


def _class_weights(c_dim: int, label_probs, device: torch.device | str | None) -> torch.Tensor:
    """``[1, c_dim]`` class weights on ``device`` from ``label_probs`` (None = uniform): the same float32 values
    as the generator path below, kept on the device (a tensor already there is used as it is)."""
    device = torch.get_default_device() if device is None else torch.device(device)
    if isinstance(label_probs, torch.Tensor) and label_probs.device == device:
        assert label_probs.shape == (c_dim,), f"label_probs must be [{c_dim}], got {tuple(label_probs.shape)}"
        return label_probs.float().view(1, c_dim)
    host = None if label_probs is None else np.asarray(label_probs, dtype=np.float64).tobytes()
    return _cached_class_weights(c_dim, host, device)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` (CPU by default: the same numbers on every device)."""
    return torch.Generator(device=device).manual_seed(int(seed))


def sample_generator_inputs(
    n: int,                       # batch size
    z_dim: int,                   # latent size
    c_dim: int,                   # one-hot class size (0 = unconditional)
    prior,                        # stages.nn.camera_prior.CameraPrior
    *,
    label_probs: np.ndarray | torch.Tensor | None = None,  # [c_dim] class distribution (None = uniform)
    labels: torch.Tensor | None = None,  # [n] fixed class ids (overrides label_probs)
    frontal: bool = False,        # yaw 0, pitch pi/2 before the adaptor (ref §6.5)
    generator: torch.Generator | None = None,  # RNG (None = global RNG)
    device: torch.device | str | None = None,  # where the tensors live
) -> GeneratorInputs:
    """Sample ``n`` generator inputs: z, classes from ``label_probs`` and prior cameras (module docstring)."""
    z = rng.randn((n, z_dim), generator, device)  # [n, z_dim]
    c = None
    if c_dim > 0:
        if labels is None and generator is None:  # training: drawn on the device, from the device's distribution
            labels = torch.multinomial(_class_weights(c_dim, label_probs, device), n, replacement=True).view(n)
        elif labels is None:  # a seeded generator: drawn on its device, the same classes whatever ``device`` is
            probs = torch.ones(c_dim) if label_probs is None else torch.as_tensor(label_probs, dtype=torch.float64)
            assert probs.shape == (c_dim,), f"label_probs must be [{c_dim}], got {tuple(probs.shape)}"
            labels = rng.multinomial(probs.float().view(1, c_dim), n, generator, replacement=True).view(n)  # [n]
            labels = labels.to(device) if device is not None else labels
        labels = labels.long()
        assert labels.shape == (n,), f"labels must be [{n}], got {tuple(labels.shape)}"
        c = one_hot(labels, c_dim)
    cameras = prior.sample(n, generator=generator, device=device)  # [n, 8]
    if frontal:
        cameras[:, CAM_YAW] = FRONTAL_YAW
        cameras[:, CAM_PITCH] = FRONTAL_PITCH
    return GeneratorInputs(z=z, c=c, camera_prior=cameras, labels=labels if c_dim > 0 else None)
