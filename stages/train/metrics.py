"""Periodic metrics on G_ema during training (3DGP ref §6.1-§6.5): a thin use of ``stages.metrics``.

Every process of the run computes its share (``stages.metrics.shard``): no rank waits in a collective while
another evaluates alone, and a metric costs 1/N of its time on N processes. Real statistics are computed once per
run over ALL the dataset's (un-mirrored) reals, whatever ``data.max_items`` (the official code, and ``3dgp eval``,
use the full set), with ``data.workers`` decode workers, and cached in ``<run_dir>/metric-cache/``. Fakes and NFS
renders come from ``stages.metrics.sources.GeneratorSource`` exactly as ``3dgp eval`` makes them, seeded from the
run seed (the same fakes at every evaluation, so the curve measures the model, not the sample).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from stages.common.seeding import derive_seed
from stages.metrics.compute import compute_metrics
from stages.metrics.context import MetricContext
from stages.metrics.registry import MetricSpec, parse_metric
from stages.metrics.shard import Shard
from stages.metrics.sources import DatasetSource, GeneratorSource

logger = logging.getLogger(__name__)
_detector_cache: dict[str, object] = {}
METRIC_SEED_SALT = 0x3E7


def load_detector(device: torch.device):
    """The Inception detector (cached per process); tests monkeypatch this function."""
    key = str(device)
    if key not in _detector_cache:
        from stages.metrics.detector import load_inception

        _detector_cache[key] = load_inception(device=str(device))
    return _detector_cache[key]


class MetricRunner:
    """Evaluates the configured metric names on G_ema, sharded over every process of the run."""

    def __init__(self, names: tuple[str, ...], dataset, prior, label_probs, c_dim: int, device: torch.device,
                 run_dir: Path, seed: int, workers: int = 0):
        from stages.data.dataset import LmdbDataset

        self.specs: list[MetricSpec] = [parse_metric(n).resolved() for n in names]
        full = LmdbDataset(dataset.path) if self.specs else dataset  # every item, never mirrored (module docstring)
        self.reals = DatasetSource(full, workers=workers)
        self.prior, self.label_probs, self.device = prior, label_probs, device
        self.cache_dir = Path(run_dir) / "metric-cache"
        self.seed = derive_seed(seed, METRIC_SEED_SALT)

    @property
    def primary(self) -> MetricSpec | None:
        return self.specs[0] if self.specs else None

    def evaluate(self, G_ema) -> dict[str, float]:
        """``{name: value}`` for every configured metric (deterministic: seeded from the run seed). Every rank must
        call it; every rank gets the same values."""
        fakes = GeneratorSource(G_ema, self.prior, self.label_probs, self.device, seed=self.seed)
        ctx = MetricContext(fakes, self.reals, detector_loader=lambda: load_detector(self.device),
                            cache_dir=self.cache_dir, progress=False, shard=Shard.current())
        results = compute_metrics(self.specs, ctx)
        for r in results:
            if r.unavailable:
                logger.warning("%s", r.unavailable)
        return {r.name: r.value for r in results if r.value is not None}
