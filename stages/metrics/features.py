"""Streaming feature statistics for FID/KID (3DGP ref §6.2: biased covariance, divide by N)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class FeatureStats:
    """Accumulates detector features: sum and outer-product sum in float64, and optionally the raw rows."""

    def __init__(self, capture_all: bool = False, max_items: int | None = None) -> None:
        self.capture_all = capture_all  # keep raw features (KID needs them)
        self.max_items = max_items  # stop accepting after this many rows
        self.num_items = 0
        self.num_features: int | None = None
        self._sum: np.ndarray | None = None  # [F]
        self._outer: np.ndarray | None = None  # [F, F]
        self._rows: list[np.ndarray] = []

    @property
    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, feats) -> None:
        """Add a batch of features ``[N, F]`` (numpy or torch)."""
        if hasattr(feats, "detach"):
            feats = feats.detach().cpu().numpy()
        x = np.asarray(feats, dtype=np.float64)
        assert x.ndim == 2, x.shape
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if len(x) == 0:
            return
        if self.num_features is None:
            self.num_features = x.shape[1]
            self._sum = np.zeros([x.shape[1]], dtype=np.float64)
            self._outer = np.zeros([x.shape[1], x.shape[1]], dtype=np.float64)
        assert x.shape[1] == self.num_features
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        if self.capture_all:
            self._rows.append(x.astype(np.float32))
        self.num_items += len(x)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[F]`` and biased covariance ``[F, F]`` (divide by N, as the official code)."""
        assert self.num_items > 0, "no features accumulated"
        mean = self._sum / self.num_items
        cov = self._outer / self.num_items - np.outer(mean, mean)
        return mean, cov

    def all_features(self) -> np.ndarray:
        """All captured rows ``[N, F]`` (float32)."""
        assert self.capture_all, "construct with capture_all=True to keep the features"
        return np.concatenate(self._rows, axis=0)

    def save(self, path: str | Path) -> None:
        """Save to ``.npz`` (mean, cov, count; raw rows when captured)."""
        mean, cov = self.mean_cov()
        arrays = {"mean": mean, "cov": cov, "num_items": np.array(self.num_items)}
        if self.capture_all:
            arrays["features"] = self.all_features()
        tmp = Path(str(path) + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        """Inverse of :meth:`save`."""
        data = np.load(path)
        stats = cls(capture_all="features" in data)
        stats.num_items = int(data["num_items"])
        mean, cov = data["mean"], data["cov"]
        stats.num_features = mean.shape[0]
        stats._sum = mean * stats.num_items
        stats._outer = (cov + np.outer(mean, mean)) * stats.num_items
        if stats.capture_all:
            stats._rows = [data["features"]]
        return stats
