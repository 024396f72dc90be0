"""Metric names and the generic generate/detect loops (3DGP ref §6.1-6.5), shared by train and eval.

Names: ``fid<N>`` / ``kid<N>`` (N fakes against all reals, optional ``_full`` suffix as in the official names) and
``nfs<N>`` (N samples); N accepts a ``k`` suffix: ``fid2k`` = 2000 fakes, ``nfs256`` = 256 samples.
The loops take callables, never a model: ``generate(batch) -> uint8 [B, 3, H, W]`` (or raw depth for NFS) and
``detector(uint8 [B, 3, H, W]) -> [B, F]``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stages.common.errors import BadOptionError
from stages.common.metrics.features import FeatureStats
from stages.common.metrics.frechet import frechet_distance, kernel_inception_distance
from stages.common.metrics.nfs import non_flatness_scores

_NAME_RE = re.compile(r"^(fid|kid|nfs)(\d+)(k?)(_full)?$")


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name."""

    name: str  # as given, e.g. "fid2k"
    kind: str  # "fid" | "kid" | "nfs"
    num_gen: int  # generated samples

    @property
    def lower_is_better(self) -> bool:
        return self.kind != "nfs"

    @property
    def needs_detector(self) -> bool:
        return self.kind in ("fid", "kid")


def parse_metric(name: str, option: str = "--metrics") -> MetricSpec:
    """``"fid2k"`` -> ``MetricSpec("fid2k", "fid", 2000)``; a bad name raises BadOptionError."""
    match = _NAME_RE.match(name.strip().lower())
    if not match:
        raise BadOptionError(option, f"unknown metric {name!r} (expected fid<N>, kid<N> or nfs<N>, e.g. fid2k, "
                                     f"nfs256)")
    kind, number, kilo, _ = match.groups()
    num = int(number) * (1000 if kilo else 1)
    if num < 2:
        raise BadOptionError(option, f"{name}: needs at least 2 samples")
    return MetricSpec(name=name, kind=kind, num_gen=num)


def accumulate_features(batches: Iterable, detector: Callable, max_items: int | None = None,
                        capture_all: bool = False) -> FeatureStats:
    """Feed uint8 image batches ``[B, 3, H, W]`` through ``detector`` into a :class:`FeatureStats`."""
    import torch

    stats = FeatureStats(capture_all=capture_all, max_items=max_items)
    with torch.no_grad():
        for images in batches:
            stats.append(detector(images))
            if stats.is_full:
                break
    return stats


def generated_batches(generate: Callable[[int], object], num: int, batch: int) -> Iterable:
    """Yield ``generate(b)`` for batch sizes summing to ``num``."""
    done = 0
    while done < num:
        b = min(batch, num - done)
        yield generate(b)
        done += b


def fid_from_stats(gen: FeatureStats, real: FeatureStats) -> float:
    """FID between two accumulated statistics (ref §6.2)."""
    mu_g, cov_g = gen.mean_cov()
    mu_r, cov_r = real.mean_cov()
    return frechet_distance(mu_g, cov_g, mu_r, cov_r)


def compute_image_metric(spec: MetricSpec, generate: Callable, detector: Callable, real: FeatureStats,
                         batch: int = 16) -> float:
    """FID or KID of ``spec.num_gen`` generated images against precomputed real statistics."""
    gen = accumulate_features(generated_batches(generate, spec.num_gen, batch), detector,
                              max_items=spec.num_gen, capture_all=spec.kind == "kid")
    if spec.kind == "fid":
        return fid_from_stats(gen, real)
    return kernel_inception_distance(gen.all_features(), real.all_features())


def compute_nfs(spec: MetricSpec, generate_depth: Callable, batch: int = 16, near: float = 0.75,
                far: float = 1.25, num_bins: int = 64) -> float:
    """Mean non-flatness score over ``spec.num_gen`` raw depth maps from ``generate_depth(b)`` (ref §6.5)."""
    import torch

    scores = [non_flatness_scores(d, near, far, num_bins) for d in generated_batches(generate_depth,
                                                                                      spec.num_gen, batch)]
    return float(torch.cat(scores).mean())
