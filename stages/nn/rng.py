"""Random draws from an optional ``torch.Generator`` that may live on another device than the result (ref §5.4).

``torch.rand(..., generator=g, device=d)`` fails when ``g.device != d`` (e.g. a CPU generator and CUDA tensors).
These helpers draw on the generator's device and move the result to the requested device, so a CPU generator
drives CUDA models (and reproduces the same numbers on any device). Without a generator they draw from the
global RNG of the requested device, exactly like the plain torch calls; when the devices already match they are
the plain torch calls, so existing seeded streams are unchanged.

Public API:
  rand(shape, generator=None, device=None, dtype=torch.float32) -> U[0, 1) on ``device``
  randn(shape, generator=None, device=None, dtype=torch.float32) -> N(0, 1) on ``device``
  randint(high, shape, generator=None, device=None) -> int64 in [0, high) on ``device``
  multinomial(probs [B, N], num_samples, generator=None, replacement=False) -> int64 [B, num_samples] on ``probs.device``
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

DeviceLike = torch.device | str | None


def _target_device(device: DeviceLike) -> torch.device:
    """The device a factory call with ``device`` would use (None = the default device)."""
    return torch.get_default_device() if device is None else torch.device(device)


def _draw_device(generator: torch.Generator | None, device: DeviceLike) -> torch.device:
    """Where to draw: the generator's device if there is a generator, else ``device``."""
    return generator.device if generator is not None else _target_device(device)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device: DeviceLike = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) samples of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    out = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(_target_device(device))


def randn(shape: Sequence[int], generator: torch.Generator | None = None, device: DeviceLike = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N(0, 1) samples of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    out = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(_target_device(device))


def randint(high: int, shape: Sequence[int], generator: torch.Generator | None = None,
            device: DeviceLike = None) -> torch.Tensor:
    """Integers in [0, high) of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    out = torch.randint(high, tuple(shape), generator=generator, device=_draw_device(generator, device))
    return out.to(_target_device(device))


def multinomial(probs: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
                replacement: bool = False) -> torch.Tensor:
    """``torch.multinomial`` rows of ``probs`` [B, N] -> [B, num_samples] on ``probs.device`` (ref §5.4)."""
    if generator is None or generator.device == probs.device:
        return torch.multinomial(probs, num_samples, replacement=replacement, generator=generator)
    index = torch.multinomial(probs.to(generator.device), num_samples, replacement=replacement, generator=generator)
    return index.to(probs.device)
