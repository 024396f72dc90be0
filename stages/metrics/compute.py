"""Evaluate metric specs over fake and real sources: how each registered kind is computed (3DGP ref §6).

``compute_metrics(specs, ctx)`` runs every spec and returns one :class:`MetricResult` each, on every process of the
job: each process computes its share of the samples (``ctx.shard``, ``stages.metrics.shard``), rank 0 assembles the
features / scores and computes the numbers, and the results are broadcast. Work is shared: fakes of the same size
are generated and passed through the detector once (FID, KID and IS of N fakes see the same images), and the real
statistics are computed once per (dataset content, detector, resize, moments/all) and cached on disk
(``<cache_dir>/reals-*.npz`` with a ``.json`` sidecar holding the sha256 of the exact uint8 images that went in,
hashed per block of ``HASH_BLOCK`` images so that any number of processes gives the same digest).

A metric that cannot be computed with what was given (IS without weights, NFS of an image set) comes back with
``unavailable`` set instead of a value; nothing is substituted silently. A statistic that is undefined (FID or KID of
fewer than 2 images) is an error, not a number.
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

from stages.common.errors import MetricUnavailable, ThreeDGPError
from stages.common.progress import progress_bar
from stages.metrics.features import KID_MAX_REALS, FeatureStats
from stages.metrics.frechet import fid_from_stats, kernel_inception_distance
from stages.metrics.shard import HASH_BLOCK, Shard
from stages.metrics.sources import DETECTOR_BATCH, RENDER_UNIT  # DETECTOR_BATCH divides HASH_BLOCK

logger = logging.getLogger(__name__)
FEW_SAMPLES = 2048  # below this many fakes or reals FID is strongly biased upwards: said on the card and the log


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


def require_samples(what: str, fakes: int, reals: int | None = None, minimum: int = 2) -> None:
    """Refuse an undefined statistic (fewer than ``minimum`` fakes or reals) with one line."""
    for side, count in (("fakes", fakes), ("reals", reals)):
        if count is not None and count < minimum:
            raise ThreeDGPError(f"{what} is undefined with {count} {side[:-1] if count == 1 else side}: it needs at "
                                f"least {minimum} (raise --num-gen, or give a larger set)")


def few_samples_note(fakes: int, reals: int | None = None) -> dict:
    """The card's warning when FID/KID rest on fewer than FEW_SAMPLES images on a side."""
    small = min(fakes, reals if reals is not None else fakes)
    if small >= FEW_SAMPLES:
        return {}
    logger.warning("only %d images on one side: FID/KID are strongly biased at this size; compare only numbers of "
                   "the same size", small)
    return {"warning": f"{small} < {FEW_SAMPLES} images on one side: biased; compare only numbers of the same size"}


def _fid(spec, ctx: MetricContext) -> MetricResult | None:
    gen = ctx.fake_features(spec.num_gen)
    real = ctx.real_stats(capture_all=False)
    if not ctx.shard.is_main:
        return None
    require_samples("FID", gen.num_items, real.num_items)
    return MetricResult(spec.name, spec.kind, fid_from_stats(gen, real), num_fakes=gen.num_items,
                        num_reals=real.num_items, details=few_samples_note(gen.num_items, real.num_items))


def _kid(spec, ctx: MetricContext) -> MetricResult | None:
    gen = ctx.fake_features(spec.num_gen)
    real = ctx.real_stats(capture_all=True)
    if not ctx.shard.is_main:
        return None
    require_samples("KID", gen.num_items, real.num_rows)
    value = kernel_inception_distance(gen.all_features(), real.all_features())
    return MetricResult(spec.name, spec.kind, value, num_fakes=gen.num_items, num_reals=real.num_rows,
                        details={"num_subsets": 100, "subset_size": min(1000, gen.num_items, real.num_rows),
                                 "max_reals": KID_MAX_REALS, **few_samples_note(gen.num_items, real.num_rows)})


def _inception_score(spec, ctx: MetricContext) -> MetricResult | None:
    from stages.metrics.inception_score import inception_score

    net = ctx.is_network()
    n = spec.num_gen if ctx.is_generator else min(spec.num_gen, ctx.fakes.count)
    part = ctx.shard.part(n, DETECTOR_BATCH)
    chunks = [torch.zeros((0, net.num_classes))]
    with torch.inference_mode():
        for batch in ctx.track(ctx.fakes.images(part), len(part), f"IS fakes ({n})"):
            chunks.append(net(batch))
    probs = ctx.shard.gather(torch.cat(chunks).float())
    if probs is None:
        return None
    require_samples("IS", len(probs), None, minimum=10)
    mean, std = inception_score(probs.numpy(), 10)
    return MetricResult(spec.name, spec.kind, mean, std=std, num_fakes=len(probs),
                        details={"splits": 10, "network": net.path, "network_sha256": net.sha256})


def _require_generator(ctx: MetricContext, spec) -> None:
    if not ctx.is_generator:
        raise MetricUnavailable(f"{spec.name} unavailable: needs a checkpoint (it renders depth and views), not an "
                                f"image set")


def _gather_cat(ctx: MetricContext, parts: list[torch.Tensor], empty_shape: tuple) -> torch.Tensor | None:
    """Concatenate this rank's per-sample tensors and gather every rank's on rank 0 (float32, on the device)."""
    local = torch.cat(parts) if parts else torch.zeros(empty_shape, device=ctx.fakes.device)
    return ctx.shard.gather(local.float())


def _nfs(spec, ctx: MetricContext) -> MetricResult | None:
    from stages.metrics.nfs import non_flatness_scores
    from stages.metrics.sources import NFS_BATCH

    _require_generator(ctx, spec)
    G = ctx.fakes.G
    part = ctx.shard.part(spec.num_gen, NFS_BATCH)  # the density cut couples the images of a chunk
    rows = []
    for d in ctx.track(ctx.fakes.nfs_depths(part), len(part), f"nfs ({spec.num_gen})"):
        empty = (d < G.ray_start).flatten(1).float().mean(1)  # [b] pixels the density cut emptied (or thinned)
        rows.append(torch.stack([non_flatness_scores(d, G.ray_start, G.ray_end).to(d.device), empty], 1))  # [b, 2]
    table = _gather_cat(ctx, rows, (0, 2))
    if table is None:
        return None
    scores, empty = table[:, 0].cpu(), table[:, 1].cpu()
    # empty_ray_fraction: the pixels whose depth fell below the near plane after the cut (all or most of their
    # density was below the chunk's median); they all land in the first bin, so a model with soft, fog-like
    # densities scores low however its uncut depth is spread (benchmarks/RESULTS.md, make demo §5).
    return MetricResult(spec.name, spec.kind, float(scores.mean()), std=float(scores.std(unbiased=False)),
                        num_fakes=len(scores), details={"bins": 64, "cut_quantile": 0.5, "camera": "frontal prior "
                                                        "through the adaptor", "range": [G.ray_start, G.ray_end],
                                                        "empty_ray_fraction": float(empty.mean())})


def _mvc(spec, ctx: MetricContext) -> MetricResult | None:
    from stages.metrics.geometry import MVCResult, multiview_consistency

    _require_generator(ctx, spec)
    src = ctx.fakes
    part = ctx.shard.part(spec.num_gen, RENDER_UNIT)
    rows = []
    for inputs, gen in ctx.track(src.batches("mvc", part), len(part), f"mvc ({spec.num_gen})",
                                 size=lambda item: len(item[0])):
        with torch.no_grad():
            r = multiview_consistency(src.G, inputs, ws=src.mapping(inputs), generator=gen)
        rows.append(torch.stack([r.errors.float(), r.covisible.float(), r.flat_errors.float()], 1))  # [b, 3]
    table = ctx.shard.gather(torch.cat(rows) if rows else torch.zeros(0, 3))
    if table is None:
        return None
    result = MVCResult(table[:, 0], table[:, 1], table[:, 2])
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


def _depth(spec, ctx: MetricContext) -> MetricResult | None:
    from stages.metrics.geometry import depth_realism, planar_depth_baselines

    _require_generator(ctx, spec)
    if ctx.reals is None or not hasattr(ctx.reals, "depth_maps") or not ctx.reals.has_depth_maps():
        raise MetricUnavailable(f"{spec.name} unavailable: needs a prepped dataset with depth (--data)")
    part = ctx.shard.part(spec.num_gen, RENDER_UNIT)
    R = ctx.fakes.resolution
    fake = _gather_cat(ctx, list(ctx.track(ctx.fakes.depths(part), len(part), f"depth ({spec.num_gen})")),
                       (0, 1, R, R))
    if fake is None:
        return None
    fake = fake.cpu()
    real = ctx.reals.depth_maps(spec.num_gen, seed=ctx.fakes.seed)
    planes = planar_depth_baselines(fake)
    details = {"flat_baseline": depth_realism(planes["constant"], real),
               "planar_baselines": {k: depth_realism(v, real) for k, v in planes.items()}}
    gt = ctx.reals.depth_maps(spec.num_gen, seed=ctx.fakes.seed, key="depth_gt")
    if gt is not None:
        details["vs_ground_truth"] = depth_realism(fake, gt)
        details["flat_baseline_vs_ground_truth"] = depth_realism(planes["constant"], gt)
        details["planar_baselines_vs_ground_truth"] = {k: depth_realism(v, gt) for k, v in planes.items()}
    return MetricResult(spec.name, spec.kind, depth_realism(fake, real), num_fakes=len(fake), num_reals=len(real),
                        details=details)


def _camera(spec, ctx: MetricContext) -> MetricResult | None:
    from stages.metrics.geometry import camera_posterior_stats

    _require_generator(ctx, spec)
    if not ctx.shard.is_main:  # no rendering: rank 0 alone
        return None
    posterior, prior = ctx.fakes.cameras(spec.num_gen)
    stats = camera_posterior_stats(posterior, prior)
    return MetricResult(spec.name, spec.kind, float(stats["spread"]), num_fakes=len(posterior), details=stats)


COMPUTE: dict[str, Callable] = {
    "fid": _fid, "kid": _kid, "is": _inception_score, "nfs": _nfs, "mvc": _mvc, "depth": _depth, "camera": _camera,
}


def _run_one(spec, ctx: MetricContext) -> MetricResult:
    """One spec on every rank: rank 0's result (or its one-line error) is everyone's."""
    outcome: tuple = (None, None)
    try:
        outcome = (COMPUTE[spec.kind](spec, ctx), None)
    except MetricUnavailable as exc:
        outcome = (MetricResult(spec.name, spec.kind, None, unavailable=str(exc)), None)
    except ThreeDGPError as exc:
        if ctx.shard.world_size == 1:
            raise
        outcome = (None, str(exc))
    result, error = ctx.shard.broadcast(outcome)
    if error is not None:
        raise ThreeDGPError(error)
    return result


def compute_metrics(specs: list, ctx: MetricContext) -> list[MetricResult]:
    """Evaluate ``specs`` (sizes resolved with ``ctx.num_gen``) in order on every rank; unavailable ones carry the
    reason. Every rank must call it; every rank returns rank 0's results. TF32 is off while they run."""
    specs = [spec.resolved(ctx.num_gen) for spec in specs]
    image_specs = [s for s in specs if s.kind in ("fid", "kid")]
    ctx.plan_fakes = max([s.num_gen for s in image_specs], default=0)
    ctx.plan_all_reals = any(s.kind == "kid" for s in specs)
    from stages.nn.precision import full_fp32

    results = []
    for spec in specs:
        t0 = time.time()
        with full_fp32():  # a measurement: TF32 off (issue 18 row 4)
            result = _run_one(spec, ctx)
        result.seconds = round(time.time() - t0, 2)
        if result.value is not None and not np.isfinite(result.value):
            logger.warning("%s is not finite (%s)", spec.name, result.value)
        results.append(result)
    return results
