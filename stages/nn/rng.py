"""Random draws from an optional ``torch.Generator`` that may live on another device than the result (ref §5.4).

``torch.rand(..., generator=g, device=d)`` fails when ``g.device != d`` (e.g. a CPU generator and CUDA tensors).
These helpers draw on the generator's device and move the result to the requested device, so a CPU generator
drives CUDA models (and reproduces the same numbers on any device). Without a generator they draw from the
global RNG of the requested device, exactly like the plain torch calls; when the devices already match they are
the plain torch calls, so existing seeded streams are unchanged.

Per-sample streams (issue 19 §4, issue 18 "the result must not depend on N"): a :class:`SampleGenerators` holds
one generator per sample of a batch. Every helper accepts it in place of a ``torch.Generator``: the leading
dimension of ``shape`` (B, or B * k rows laid out sample-major) is split into equal parts and part i is drawn from
generator i, on the CPU, then moved once. So a sample's random draws (ray jitter, importance samples, density and
synthesis noise, the depth adaptor's choice) do not depend on which other samples share its batch: the same seed
gives the same fake whatever ``--batch`` or the number of processes.

Public API:
  SampleGenerators(generators)  # one torch.Generator per sample; len() = samples
  rand(shape, generator=None, device=None, dtype=torch.float32) -> U[0, 1) on ``device``
  randn(shape, generator=None, device=None, dtype=torch.float32) -> N(0, 1) on ``device``
  randint(high, shape, generator=None, device=None) -> int64 in [0, high) on ``device``
  multinomial(probs [B, N], num_samples, generator=None, replacement=False) -> int64 [B, num_samples] on ``probs.device``
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

DeviceLike = torch.device | str | None


class SampleGenerators:
    """One ``torch.Generator`` per sample of a batch (module docstring); drawn per sample, concatenated in order."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)
        assert self.generators, "at least one generator"
        self.device = self.generators[0].device

    def __len__(self) -> int:
        return len(self.generators)

    def draw(self, fn, shape: Sequence[int], device: DeviceLike, **kwargs) -> torch.Tensor:
        """``fn(part_shape, generator=g_i, device=<generator device>, **kwargs)`` per sample, concatenated on dim 0
        and moved to ``device`` once; ``shape[0]`` must be a multiple of the number of samples."""
        shape = tuple(shape)
        rows, count = shape[0], len(self.generators)
        assert rows % count == 0, f"leading dimension {rows} is not a multiple of the {count} samples"
        part = (rows // count, *shape[1:])
        out = torch.cat([fn(part, generator=g, device=self.device, **kwargs) for g in self.generators])
        return out.to(_target_device(device))

    def split(self, start: int, stop: int) -> "SampleGenerators":
        """The generators of samples ``start .. stop - 1`` (for a chunked pass over part of the batch)."""
        return SampleGenerators(self.generators[start:stop])


def _target_device(device: DeviceLike) -> torch.device:
    """The device a factory call with ``device`` would use (None = the default device)."""
    return torch.get_default_device() if device is None else torch.device(device)


def _draw_device(generator: torch.Generator | None, device: DeviceLike) -> torch.device:
    """Where to draw: the generator's device if there is a generator, else ``device``."""
    return generator.device if generator is not None else _target_device(device)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device: DeviceLike = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) samples of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    if isinstance(generator, SampleGenerators):
        return generator.draw(lambda s, **kw: torch.rand(s, dtype=dtype, **kw), shape, device)
    out = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(_target_device(device))


def randn(shape: Sequence[int], generator: torch.Generator | None = None, device: DeviceLike = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N(0, 1) samples of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    if isinstance(generator, SampleGenerators):
        return generator.draw(lambda s, **kw: torch.randn(s, dtype=dtype, **kw), shape, device)
    out = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(_target_device(device))


def randint(high: int, shape: Sequence[int], generator: torch.Generator | None = None,
            device: DeviceLike = None) -> torch.Tensor:
    """Integers in [0, high) of ``shape`` on ``device``, drawn on the generator's device (ref §5.4)."""
    if isinstance(generator, SampleGenerators):
        return generator.draw(lambda s, **kw: torch.randint(high, s, **kw), shape, device)
    out = torch.randint(high, tuple(shape), generator=generator, device=_draw_device(generator, device))
    return out.to(_target_device(device))


def multinomial(probs: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
                replacement: bool = False) -> torch.Tensor:
    """``torch.multinomial`` rows of ``probs`` [B, N] -> [B, num_samples] on ``probs.device`` (ref §5.4)."""
    if isinstance(generator, SampleGenerators):
        rows = probs.to(generator.device).chunk(len(generator))
        assert len(rows) == len(generator) and probs.shape[0] % len(generator) == 0, "rows must split per sample"
        index = torch.cat([torch.multinomial(r, num_samples, replacement=replacement, generator=g)
                           for r, g in zip(rows, generator.generators)])
        return index.to(probs.device)
    if generator is None or generator.device == probs.device:
        return torch.multinomial(probs, num_samples, replacement=replacement, generator=generator)
    index = torch.multinomial(probs.to(generator.device), num_samples, replacement=replacement, generator=generator)
    return index.to(probs.device)
