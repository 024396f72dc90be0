"""Periodic metrics on G_ema during training (3DGP ref §6.1-§6.5), built on ``stages.common.metrics``.

Real statistics are computed once per run over all (un-mirrored) reals and cached in
``<run_dir>/metric-cache/``. Fakes: z ~ N(0, I), classes from the dataset label distribution, prior cameras through
the adaptor, full-resolution render, truncation 1, uint8 quantisation of ref §6.3. NFS: "frontal" prior (yaw 0,
pitch pi/2, fov/look-at from the prior) through the adaptor, raw depth with cut_quantile 0.5 (ref §6.5).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from stages.common.metrics.features import FeatureStats
from stages.common.metrics.runner import MetricSpec, accumulate_features, compute_image_metric, compute_nfs, \
    parse_metric
from stages.common.seeding import seed_everything, derive_seed
from stages.train.reporting import to_uint8

logger = logging.getLogger(__name__)
_detector_cache: dict[str, object] = {}


def load_detector(device: torch.device):
    """The Inception detector (cached per process); tests monkeypatch this function."""
    key = str(device)
    if key not in _detector_cache:
        from stages.nn.inception import load_inception

        _detector_cache[key] = load_inception(device=str(device))
    return _detector_cache[key]


def real_stats(dataset, detector, cache_dir: Path, capture_all: bool, batch: int = 32) -> FeatureStats:
    """Detector statistics of every stored real image (mirroring off, ref §6.2), cached on disk."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"reals-{len(dataset)}-{'all' if capture_all else 'moments'}.npz"
    if path.is_file():
        stats = FeatureStats.load(path)
        if stats.capture_all or not capture_all:
            return stats

    def batches():
        for start in range(0, dataset.num_items, batch):
            idx = range(start, min(start + batch, dataset.num_items))
            yield torch.stack([dataset[i]["image"] for i in idx])  # [b, 3, R, R] uint8

    stats = accumulate_features(batches(), detector, capture_all=capture_all)
    stats.save(path)
    return stats


class MetricRunner:
    """Evaluates the configured metric names on G_ema (rank 0)."""

    def __init__(self, names: tuple[str, ...], dataset, prior, label_probs, c_dim: int, device: torch.device,
                 run_dir: Path, seed: int, batch: int = 8):
        self.specs: list[MetricSpec] = [parse_metric(n) for n in names]
        self.dataset = dataset
        self.prior = prior
        self.label_probs = label_probs
        self.c_dim = c_dim
        self.device = device
        self.cache_dir = run_dir / "metric-cache"
        self.seed = seed
        self.batch = batch
        self._reals: FeatureStats | None = None

    @property
    def primary(self) -> MetricSpec | None:
        return self.specs[0] if self.specs else None

    def _inputs(self, G, n: int, frontal: bool = False):
        z = torch.randn(n, G.z_dim, device=self.device)
        c = None
        if self.c_dim > 0:
            labels = torch.from_numpy(np.random.choice(self.c_dim, size=n, p=self.label_probs)).to(self.device)
            c = torch.nn.functional.one_hot(labels, self.c_dim).float()
        cameras = self.prior.sample(n, device=self.device)
        if frontal:  # ref §6.5: yaw 0, pitch pi/2; fov and look-at from the prior; the adaptor is still applied
            cameras[:, 0] = 0.0
            cameras[:, 1] = math.pi / 2
        return z, c, cameras

    @torch.no_grad()
    def _generate_images(self, G, n: int) -> torch.Tensor:
        z, c, cameras = self._inputs(G, n)
        return to_uint8(G(z, c, cameras)["img"]).cpu()  # [n, 3, R, R]

    @torch.no_grad()
    def _generate_depth(self, G, n: int) -> torch.Tensor:
        z, c, cameras = self._inputs(G, n, frontal=True)
        return G(z, c, cameras, cut_quantile=0.5)["depth"].cpu()  # [n, 1, R, R] raw world units

    def evaluate(self, G_ema) -> dict[str, float]:
        """``{name: value}`` for every configured metric (deterministic: seeded from the run seed)."""
        results = {}
        for spec in self.specs:
            seed_everything(derive_seed(self.seed, 0x3E7, spec.num_gen))
            if spec.kind == "nfs":
                results[spec.name] = compute_nfs(spec, lambda b: self._generate_depth(G_ema, b), self.batch,
                                                 G_ema.ray_start, G_ema.ray_end)
                continue
            detector = load_detector(self.device)
            if self._reals is None or (spec.kind == "kid" and not self._reals.capture_all):
                self._reals = real_stats(self.dataset, detector, self.cache_dir,
                                         capture_all=any(s.kind == "kid" for s in self.specs))
            results[spec.name] = compute_image_metric(spec, lambda b: self._generate_images(G_ema, b), detector,
                                                      self._reals, self.batch)
        return results
