"""Streaming feature statistics for FID/KID (3DGP ref §6.2: biased covariance, divide by N).

:class:`FeatureStats` sums features and their outer products in float64 and optionally keeps the raw rows (KID),
up to ``max_rows`` of them (the official code caps KID's reals at 1,000,000: :data:`KID_MAX_REALS`), while the
moments always cover every item. :meth:`FeatureStats.merged` assembles the shares of several processes on rank 0
(``stages.metrics.shard``): moments summed, rows concatenated in rank order.

Memory: the moments take ``2 * F^2 * 8`` bytes (64 MiB for Inception's F = 2048) whatever the count; captured rows
take ``rows * F * 4`` bytes (8 KiB per image: 50k fakes = 0.4 GB, 1M reals = 8.2 GB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.common.errors import ThreeDGPError

KID_MAX_REALS = 1_000_000  # ref §6.4: "50k fakes versus up to 1M reals"
ROW_BYTES = 4  # float32 rows


class FeatureStats:
    """Accumulates detector features: sum and outer-product sum in float64, and optionally the raw rows."""

    def __init__(self, capture_all: bool = False, max_items: int | None = None, max_rows: int | None = None,
                 num_features: int | None = None) -> None:
        self.capture_all = capture_all  # keep raw features (KID needs them)
        self.max_items = max_items  # stop accepting after this many rows
        self.max_rows = max_rows  # keep at most this many raw rows (moments still cover every item)
        self.num_items = 0
        self.num_features: int | None = None
        self._sum: np.ndarray | None = None  # [F]
        self._outer: np.ndarray | None = None  # [F, F]
        self._rows: list[np.ndarray] = []
        self._num_rows = 0
        self._loaded: tuple[np.ndarray, np.ndarray] | None = None  # (mean, cov) exactly as a cache file holds them
        if num_features is not None:
            self._allocate(num_features)

    def _allocate(self, num_features: int) -> None:
        self.num_features = num_features
        self._sum = np.zeros([num_features], dtype=np.float64)
        self._outer = np.zeros([num_features, num_features], dtype=np.float64)

    @property
    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    @property
    def num_rows(self) -> int:
        """Raw rows kept (``num_items`` unless ``max_rows`` capped them)."""
        return self._num_rows

    def append(self, feats) -> None:
        """Add a batch of features ``[N, F]`` (numpy or torch); non-finite features are an error, at once."""
        if hasattr(feats, "detach"):
            feats = feats.detach().cpu().numpy()
        x = np.asarray(feats, dtype=np.float64)
        assert x.ndim == 2, x.shape
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if len(x) == 0:
            return
        self._loaded = None  # the sums change: the mean and covariance are recomputed from them
        if not np.isfinite(x).all():
            raise ThreeDGPError(f"the feature detector returned non-finite features ({int((~np.isfinite(x)).sum())} "
                                f"values in a batch of {len(x)}): check --inception / the images")
        if self.num_features is None:
            self._allocate(x.shape[1])
        assert x.shape[1] == self.num_features
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        if self.capture_all:
            keep = len(x) if self.max_rows is None else max(0, min(len(x), self.max_rows - self._num_rows))
            if keep:
                self._rows.append(x[:keep].astype(np.float32))
                self._num_rows += keep
        self.num_items += len(x)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[F]`` and biased covariance ``[F, F]`` (divide by N, as the official code). Loaded statistics give
        the saved arrays themselves, so a cached reference scores exactly like the fresh one it was saved from."""
        assert self.num_items > 0, "no features accumulated"
        if self._loaded is not None:
            return self._loaded
        mean = self._sum / self.num_items
        cov = self._outer / self.num_items - np.outer(mean, mean)
        return mean, cov

    def all_features(self) -> np.ndarray:
        """All captured rows ``[N, F]`` (float32)."""
        assert self.capture_all, "construct with capture_all=True to keep the features"
        if not self._rows:
            return np.zeros((0, self.num_features or 0), dtype=np.float32)
        return np.concatenate(self._rows, axis=0)

    def merged(self, shard, num_features: int, chunk: int | None = None) -> "FeatureStats | None":
        """Every rank's stats summed (moments) and concatenated (rows, rank order) on rank 0; None elsewhere.

        When every row was kept (fakes), rank 0 rebuilds the moments from the gathered rows in ``chunk``-row steps,
        the order one process appends them in: the statistics, and so FID, are then bit-identical to a single
        process's (summed per-rank moments differ in the last bits)."""
        import torch

        if shard.world_size == 1:
            return self
        moments = torch.zeros(1 + num_features + num_features * num_features, dtype=torch.float64)
        if self.num_items:
            moments[0] = self.num_items
            moments[1:1 + num_features] = torch.from_numpy(self._sum)
            moments[1 + num_features:] = torch.from_numpy(self._outer).flatten()
        shard.sum_(moments)
        local = self.all_features().reshape(-1, num_features) if self.capture_all else None
        rows = shard.gather(torch.from_numpy(local)) if local is not None else None
        if not shard.is_main:
            return None
        out = FeatureStats(self.capture_all, num_features=num_features)
        if rows is not None and len(rows) == int(moments[0]) and chunk:
            for start in range(0, len(rows), chunk):
                out.append(rows[start:start + chunk].numpy())
            return out
        out.num_items = int(moments[0])
        out._sum = moments[1:1 + num_features].numpy().copy()
        out._outer = moments[1 + num_features:].view(num_features, num_features).numpy().copy()
        if rows is not None and len(rows):
            out._rows, out._num_rows = [rows.numpy()], len(rows)
        return out

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
        stats._loaded = (mean, cov)
        if stats.capture_all:
            stats._rows = [data["features"]]
            stats._num_rows = len(data["features"])
        return stats
