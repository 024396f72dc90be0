"""Evaluate metric specs over fake and real sources: how each registered kind is computed (3DGP ref §6).

``compute_metrics(specs, ctx)`` runs every spec and returns one :class:`MetricResult` each. Work is shared: fakes of
the same size are generated and passed through the detector once (FID, KID and IS of N fakes see the same images),
and the real statistics are computed once per (dataset content, detector, resize, moments/all) and cached on disk
(``<cache_dir>/reals-*.npz`` with a ``.json`` sidecar holding the sha256 of the exact uint8 images that went in).
A metric that cannot be computed with what was given (IS without weights, NFS of an image folder) comes back with
``unavailable`` set instead of a value; nothing is substituted silently.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from stages.common.errors import MetricUnavailable
from stages.common.progress import progress_bar
from stages.metrics.features import FeatureStats
from stages.metrics.frechet import fid_from_stats, kernel_inception_distance
from stages.metrics.nfs import non_flatness_scores
from stages.metrics.registry import MetricSpec

logger = logging.getLogger(__name__)


@dataclass
class MetricResult:
    """One evaluated metric (what the table shows and the card records)."""

    name: str  # as requested, e.g. "fid2k_full"
    kind: str  # registry kind
    value: float | None  # None when unavailable
    std: float | None = None  # over splits (IS) / samples (NFS, MVC), when defined
    num_fakes: int = 0
    num_reals: int = 0
    unavailable: str | None = None  # the reason, "IS unavailable: ..."
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class MetricContext:
    """Sources, networks and caches shared by the metrics of one evaluation."""

    def __init__(self, fakes, reals=None, *, detector_loader: Callable, is_loader: Callable | None = None,
                 cache_dir: str | Path | None = None, num_gen: int | None = None, progress: bool = True):
        self.fakes, self.reals = fakes, reals
        self._detector_loader, self._is_loader = detector_loader, is_loader
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.num_gen, self.progress = num_gen, progress
        self._detector = None
        self._gen_features: dict[int, FeatureStats] = {}
        self._real_stats: FeatureStats | None = None
        self.real_info: dict = {}
        self.plan_fakes = 0  # the largest number of fakes any image metric of this evaluation needs
        self.plan_all_reals = False  # whether any metric needs every real feature row (KID)

    def detector(self):
        if self._detector is None:
            self._detector = self._detector_loader()
        return self._detector

    def is_network(self):
        if self._is_loader is None:
            raise MetricUnavailable("IS unavailable: needs --is-weights PATH")
        return self._is_loader()

    def track(self, batches: Iterable, total: int, description: str) -> Iterator:
        """Iterate over batches with a progress bar advanced by the batch length."""
        if not self.progress:
            yield from batches
            return
        with progress_bar(total, description) as advance:
            for item in batches:
                yield item
                advance(len(item) if hasattr(item, "__len__") else 1)

    def fake_features(self, n: int) -> FeatureStats:
        """Detector features of the first ``n`` fakes (all rows kept). Fakes are extracted once, for the largest
        size planned, and smaller sizes take the first rows (the first n fakes do not depend on the total)."""
        if n in self._gen_features:
            return self._gen_features[n]
        larger = [m for m in self._gen_features if m >= n]
        if larger:
            rows = self._gen_features[min(larger)].all_features()[:n]
        else:
            total = max(n, self.plan_fakes)
            if getattr(self.fakes, "kind", None) != "generator":
                total = min(total, self.fakes.count)
            rows_stats = FeatureStats(capture_all=True, max_items=total)
            overlap = getattr(self.fakes, "kind", None) != "generator" or self.fakes.device.type == "cuda"
            batches = self.track(self.fakes.images(total), total, f"fakes ({total})")
            for feats in _extract(self.detector(), batches, overlap):
                rows_stats.append(feats)
            self._gen_features[rows_stats.num_items] = rows_stats
            rows = rows_stats.all_features()[:n]
        stats = FeatureStats(capture_all=True)
        stats.append(rows)
        self._gen_features[n] = stats
        return stats

    def real_stats(self, capture_all: bool) -> FeatureStats:
        """Detector statistics of every real image (cached on disk by content, detector and resize)."""
        if self.reals is None:
            raise MetricUnavailable("needs a reference set (--data)")
        capture_all = capture_all or self.plan_all_reals
        if self._real_stats is not None and (self._real_stats.capture_all or not capture_all):
            return self._real_stats
        detector = self.detector()
        desc = self.reals.describe()
        content = desc.get("meta_sha256") or desc.get("content_sha256") or "nocontent"
        sha, resize = getattr(detector, "sha256", "custom"), getattr(detector, "resize", "none")
        stem = f"reals-{content[:16]}-{sha[:12]}-{resize}-{self.reals.count}"
        path = None if self.cache_dir is None else self.cache_dir / f"{stem}-{'all' if capture_all else 'moments'}.npz"
        other = None if path is None else self.cache_dir / f"{stem}-all.npz"
        for candidate in (path, other):
            if candidate is not None and candidate.is_file() and candidate.with_suffix(".json").is_file():
                self._real_stats = FeatureStats.load(candidate)
                self.real_info = {**json.loads(candidate.with_suffix(".json").read_text()), "cache": str(candidate)}
                return self._real_stats
        digest = hashlib.sha256()
        stats = FeatureStats(capture_all=capture_all)

        def hashed(batches):
            for images in batches:
                digest.update(images.contiguous().numpy().tobytes())
                yield images

        for feats in _extract(detector, hashed(self.track(self.reals.images(), self.reals.count, "reals"))):
            stats.append(feats)
        self.real_info = {"images_sha256": digest.hexdigest(), "num_items": stats.num_items,
                          "detector_sha256": sha, "resize": resize,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if path is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            stats.save(path)
            path.with_suffix(".json").write_text(json.dumps(self.real_info, indent=1))
            self.real_info["cache"] = str(path)
        self._real_stats = stats
        return stats


def _extract(detector, batches: Iterable[torch.Tensor], overlap: bool = True) -> Iterator[torch.Tensor]:
    """Features ``[b, F]`` per uint8 batch. With ``overlap`` (image sets; generators on a GPU) producing the next
    batches runs beside the network when the detector can; a CPU generator would only fight it for the cores."""
    stream = getattr(detector, "extract_stream", None)
    if stream is not None and overlap:
        yield from stream(batches)
        return
    for images in batches:
        yield detector(images)


def _require_generator(ctx: MetricContext, spec: MetricSpec) -> None:
    if getattr(ctx.fakes, "kind", None) != "generator":
        raise MetricUnavailable(f"{spec.name} unavailable: needs a checkpoint (it renders depth and views), not an "
                                f"image set")


def _fid(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    gen = ctx.fake_features(spec.num_gen)
    real = ctx.real_stats(capture_all=False)
    return MetricResult(spec.name, spec.kind, fid_from_stats(gen, real), num_fakes=gen.num_items,
                        num_reals=real.num_items)


def _kid(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    gen = ctx.fake_features(spec.num_gen)
    real = ctx.real_stats(capture_all=True)
    value = kernel_inception_distance(gen.all_features(), real.all_features())
    return MetricResult(spec.name, spec.kind, value, num_fakes=gen.num_items, num_reals=real.num_items,
                        details={"num_subsets": 100, "subset_size": min(1000, gen.num_items, real.num_items)})


def _inception_score(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    from stages.metrics.inception_score import compute_inception_score

    net = ctx.is_network()
    n = spec.num_gen if getattr(ctx.fakes, "kind", None) == "generator" else min(spec.num_gen, ctx.fakes.count)
    mean, std = compute_inception_score(ctx.track(ctx.fakes.images(n), n, f"IS fakes ({n})"), net)
    return MetricResult(spec.name, spec.kind, mean, std=std, num_fakes=n,
                        details={"splits": 10, "network": net.path, "network_sha256": net.sha256})


def _nfs(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    _require_generator(ctx, spec)
    G = ctx.fakes.G
    scores, empty = [], []
    for d in ctx.track(ctx.fakes.nfs_depths(spec.num_gen), spec.num_gen, f"nfs ({spec.num_gen})"):
        scores.append(non_flatness_scores(d, G.ray_start, G.ray_end))  # [b]
        empty.append((d < G.ray_start).flatten(1).float().mean(1))  # [b] pixels the density cut emptied (or thinned)
    scores, empty = torch.cat(scores), torch.cat(empty)
    # empty_ray_fraction: the pixels whose depth fell below the near plane after the cut (all or most of their
    # density was below the chunk's median); they all land in the first bin, so a model with soft, fog-like
    # densities scores low however its uncut depth is spread (benchmarks/RESULTS.md, make demo §5).
    return MetricResult(spec.name, spec.kind, float(scores.mean()), std=float(scores.std(unbiased=False)),
                        num_fakes=len(scores), details={"bins": 64, "cut_quantile": 0.5, "camera": "frontal prior "
                                                        "through the adaptor", "range": [G.ray_start, G.ray_end],
                                                        "empty_ray_fraction": float(empty.mean())})


def _mvc(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    from stages.metrics.geometry import MVCResult, multiview_consistency

    _require_generator(ctx, spec)
    src = ctx.fakes
    parts = []
    for inputs, gen in ctx.track(src.batches("mvc", spec.num_gen), spec.num_gen, f"mvc ({spec.num_gen})"):
        with torch.no_grad():
            parts.append(multiview_consistency(src.G, inputs, truncation_psi=src.truncation, generator=gen))
    result = MVCResult(*(torch.cat([getattr(p, f).float() for p in parts]) for f in ("errors", "covisible",
                                                                                     "flat_errors")))
    valid = result.errors[torch.isfinite(result.errors)]  # a sample with no co-visible pixel has no error (NaN)
    if len(valid) == 0:
        raise MetricUnavailable(f"{spec.name} unavailable: no sample had co-visible pixels in the two views")
    flat = result.flat_errors[torch.isfinite(result.errors)]
    return MetricResult(spec.name, spec.kind, float(valid.mean()), std=float(valid.std(unbiased=False)),
                        num_fakes=len(result.errors), details={"covisible_fraction": result.mean_covisible,
                                                               "samples_with_covisible_pixels": len(valid),
                                                               "yaw_delta": 0.15,
                                                               "flat_depth_error": float(flat.mean()),
                                                               "parallax_ratio": result.parallax_ratio})


def _depth(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    from stages.metrics.geometry import depth_realism

    _require_generator(ctx, spec)
    if ctx.reals is None or not hasattr(ctx.reals, "depth_maps"):
        raise MetricUnavailable(f"{spec.name} unavailable: needs a prepped dataset with depth (--data)")
    real = ctx.reals.depth_maps(spec.num_gen, seed=ctx.fakes.seed)
    if real is None:
        raise MetricUnavailable(f"{spec.name} unavailable: the reference dataset has no depth maps")
    fake = torch.cat(list(ctx.track(ctx.fakes.depths(spec.num_gen), spec.num_gen, f"depth ({spec.num_gen})")))
    flat = torch.ones_like(fake)
    details = {"flat_baseline": depth_realism(flat, real)}
    gt = ctx.reals.depth_maps(spec.num_gen, seed=ctx.fakes.seed, key="depth_gt")
    if gt is not None:
        details["vs_ground_truth"] = depth_realism(fake, gt)
        details["flat_baseline_vs_ground_truth"] = depth_realism(flat, gt)
    return MetricResult(spec.name, spec.kind, depth_realism(fake, real), num_fakes=len(fake), num_reals=len(real),
                        details=details)


def _camera(spec: MetricSpec, ctx: MetricContext) -> MetricResult:
    from stages.metrics.geometry import camera_posterior_stats

    _require_generator(ctx, spec)
    posterior, prior = ctx.fakes.cameras(spec.num_gen)
    stats = camera_posterior_stats(posterior, prior)
    return MetricResult(spec.name, spec.kind, float(stats["spread"]), num_fakes=len(posterior), details=stats)


COMPUTE: dict[str, Callable[[MetricSpec, MetricContext], MetricResult]] = {
    "fid": _fid, "kid": _kid, "is": _inception_score, "nfs": _nfs, "mvc": _mvc, "depth": _depth, "camera": _camera,
}


def compute_metrics(specs: list[MetricSpec], ctx: MetricContext) -> list[MetricResult]:
    """Evaluate ``specs`` (sizes resolved with ``ctx.num_gen``) in order; unavailable ones carry the reason."""
    specs = [spec.resolved(ctx.num_gen) for spec in specs]
    image_specs = [s for s in specs if s.kind in ("fid", "kid")]
    ctx.plan_fakes = max([s.num_gen for s in image_specs], default=0)
    ctx.plan_all_reals = any(s.kind == "kid" for s in specs)
    results = []
    for spec in specs:
        t0 = time.time()
        try:
            result = COMPUTE[spec.kind](spec, ctx)
        except MetricUnavailable as exc:
            result = MetricResult(spec.name, spec.kind, None, unavailable=str(exc))
        result.seconds = round(time.time() - t0, 2)
        if result.value is not None and not np.isfinite(result.value):
            logger.warning("%s is not finite (%s)", spec.name, result.value)
        results.append(result)
    return results
