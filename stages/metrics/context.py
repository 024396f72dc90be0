"""What the metrics of one evaluation share: sources, networks, caches and this process's shard (3DGP ref §6).

:class:`MetricContext` extracts the fakes' detector features once, for the largest size planned (FID, KID and IS of
N fakes see the same images; smaller sizes take the first rows), and the real statistics once per (dataset content,
detector, resize, moments/all), cached on disk (``<cache_dir>/reals-*.npz`` with a ``.json`` sidecar holding the
sha256 of the exact uint8 images that went in, hashed per block of ``HASH_BLOCK`` images so that any number of
processes gives the same digest). Every rank computes its share (``stages.metrics.shard``); rank 0 holds the
assembled features and statistics, the other ranks None.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from stages.common.errors import MetricUnavailable
from stages.common.progress import progress_bar
from stages.metrics.features import KID_MAX_REALS, FeatureStats
from stages.metrics.shard import HASH_BLOCK, Shard
from stages.metrics.sources import DETECTOR_BATCH  # divides HASH_BLOCK: a batch of reals never straddles two blocks


class MetricContext:
    """Sources, networks, caches and the process's shard, shared by the metrics of one evaluation."""

    def __init__(self, fakes, reals=None, *, detector_loader: Callable, is_loader: Callable | None = None,
                 cache_dir: str | Path | None = None, num_gen: int | None = None, progress: bool = True,
                 shard: Shard | None = None):
        self.fakes, self.reals = fakes, reals
        self._detector_loader, self._is_loader = detector_loader, is_loader
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.num_gen, self.progress = num_gen, progress
        self.shard = shard or Shard()
        self._detector = None
        self._gen_features: dict[int, FeatureStats | None] = {}
        self._real_stats: FeatureStats | None = None  # rank 0's; None elsewhere
        self._real_kind: str | None = None  # "moments" or "all" once computed or loaded (the same on every rank)
        self.real_info: dict = {}
        self.skipped = {"fakes": 0, "reals": 0}  # image-set items that did not decode (all processes)
        self.plan_fakes = 0  # the largest number of fakes any image metric of this evaluation needs
        self.plan_all_reals = False  # whether any metric needs the real feature rows (KID)

    def detector(self):
        """The feature detector (loaded on first use)."""
        if self._detector is None:
            self._detector = self._detector_loader()
        return self._detector

    @property
    def loaded_detector(self):
        """The detector if a metric loaded it, else None (for the card)."""
        return self._detector

    def is_network(self):
        if self._is_loader is None:
            raise MetricUnavailable("IS unavailable: needs --is-weights PATH")
        return self._is_loader()

    @property
    def is_generator(self) -> bool:
        return getattr(self.fakes, "kind", None) == "generator"

    def track(self, batches: Iterable, total: int, description: str, size: Callable = len) -> Iterator:
        """Iterate over batches with a progress bar (rank 0, this rank's share) advanced by ``size(batch)``."""
        if not self.progress or not self.shard.is_main:
            yield from batches
            return
        with progress_bar(total, description) as advance:
            for item in batches:
                yield item
                advance(size(item))

    def _feature_dim(self, local: FeatureStats) -> int:
        dim = getattr(self.detector(), "dim", None)
        if dim is None:
            from stages.common.distributed import all_gather_object

            dim = max([d for d in all_gather_object(local.num_features) if d] or [0])
        return int(dim)

    def _skipped(self, source, key: str) -> None:
        counts = self.shard.gather_objects(source.skipped() if hasattr(source, "skipped") else 0)
        if counts is not None:
            self.skipped[key] = sum(counts)

    def fake_features(self, n: int) -> FeatureStats | None:
        """Detector features of the first ``n`` fakes (all rows kept) on rank 0, None elsewhere. Fakes are
        extracted once, for the largest size planned, and smaller sizes take the first rows (the first n fakes do
        not depend on the total)."""
        if n in self._gen_features:
            return self._gen_features[n]
        larger = [m for m in self._gen_features if m >= n]
        if larger:
            stats = self._gen_features[min(larger)]
        else:
            total = max(n, self.plan_fakes)
            if not self.is_generator:
                total = min(total, self.fakes.count)
            part = self.shard.part(total, DETECTOR_BATCH)
            local = FeatureStats(capture_all=True)
            overlap = not self.is_generator or self.fakes.device.type == "cuda"
            batches = self.track(self.fakes.images(part), len(part), f"fakes ({total})")
            for feats in _extract(self.detector(), batches, overlap):
                local.append(feats)
            stats = local.merged(self.shard, self._feature_dim(local), chunk=DETECTOR_BATCH)
            self._skipped(self.fakes, "fakes")
            self._gen_features[total] = stats
        if stats is not None and stats.num_items > n:
            rows = stats.all_features()[:n]
            stats = FeatureStats(capture_all=True)
            stats.append(rows)
        self._gen_features[n] = stats
        return stats

    def _cache_paths(self, capture_all: bool) -> tuple[Path | None, Path | None]:
        detector = self.detector()
        desc = self.reals.describe()
        content = desc.get("meta_sha256") or desc.get("content_sha256") or "nocontent"
        sha, resize = getattr(detector, "sha256", "custom"), getattr(detector, "resize", "none")
        stem = f"reals-{content[:16]}-{sha[:12]}-{resize}-{self.reals.count}"
        if self.cache_dir is None:
            return None, None
        return (self.cache_dir / f"{stem}-{'all' if capture_all else 'moments'}.npz",
                self.cache_dir / f"{stem}-all.npz")

    def _load_cached(self, capture_all: bool) -> bool:
        """Rank 0 looks for cached statistics and tells every rank what it found."""
        found = None
        if self.shard.is_main:
            for candidate in self._cache_paths(capture_all):
                if candidate is not None and candidate.is_file() and candidate.with_suffix(".json").is_file():
                    found = candidate
                    break
        kind = self.shard.broadcast(None if found is None else "all" if found.stem.endswith("-all") else "moments")
        if kind is None:
            return False
        if self.shard.is_main:
            self._real_stats = FeatureStats.load(found)
            self.real_info = {**json.loads(found.with_suffix(".json").read_text()), "cache": str(found)}
        self._real_kind = kind
        return True

    def real_stats(self, capture_all: bool) -> FeatureStats | None:
        """Detector statistics of every real image (rows of the first KID_MAX_REALS) on rank 0, None elsewhere;
        cached on disk by content, detector and resize."""
        if self.reals is None:
            raise MetricUnavailable("needs a reference set (--data)")
        capture_all = capture_all or self.plan_all_reals
        if self._real_kind == "all" or self._real_kind == "moments" and not capture_all:
            return self._real_stats
        if self._load_cached(capture_all):
            return self._real_stats
        stats, digest = self._extract_reals(capture_all)
        self._real_kind = "all" if capture_all else "moments"
        self._skipped(self.reals, "reals")
        if not self.shard.is_main:
            return None
        self.real_info = {"images_sha256": digest, "hash_block": HASH_BLOCK, "num_items": stats.num_items,
                          "num_rows": stats.num_rows, "detector_sha256": getattr(self.detector(), "sha256", "custom"),
                          "resize": getattr(self.detector(), "resize", "none"),
                          "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path, _ = self._cache_paths(capture_all)
        if path is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            stats.save(path)
            path.with_suffix(".json").write_text(json.dumps(self.real_info, indent=1))
            self.real_info["cache"] = str(path)
        self._real_stats = stats
        return stats

    def _extract_reals(self, capture_all: bool) -> tuple[FeatureStats | None, str | None]:
        """This rank's share of the reals through the detector, merged on rank 0 with the image digest."""
        part = self.shard.part(self.reals.count, HASH_BLOCK)
        local = FeatureStats(capture_all=capture_all, max_rows=max(0, min(part.stop, KID_MAX_REALS) - part.start))
        blocks: dict[int, hashlib._Hash] = {}
        position = part.start

        def hashed(batches):
            nonlocal position
            for images in batches:
                blocks.setdefault(position // HASH_BLOCK, hashlib.sha256()).update(
                    images.cpu().contiguous().numpy().tobytes())
                position += len(images)
                yield images

        batches = self.track(self.reals.images(part, batch=DETECTOR_BATCH), len(part), "reals")
        for feats in _extract(self.detector(), hashed(batches)):
            local.append(feats)
        merged = local.merged(self.shard, self._feature_dim(local))
        pieces = self.shard.gather_objects(sorted((k, h.hexdigest()) for k, h in blocks.items()))
        if pieces is None:
            return None, None
        digest = hashlib.sha256("".join(h for _, h in sorted(p for rank in pieces for p in rank)).encode())
        return merged, digest.hexdigest()


def _extract(detector, batches: Iterable[torch.Tensor], overlap: bool = True) -> Iterator[torch.Tensor]:
    """Features ``[b, F]`` per uint8 batch. With ``overlap`` (image sets; generators on a GPU) producing the next
    batches runs beside the network when the detector can; a CPU generator would only fight it for the cores."""
    stream = getattr(detector, "extract_stream", None)
    if stream is not None and overlap:
        yield from stream(batches)
        return
    for images in batches:
        yield detector(images)
