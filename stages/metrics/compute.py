"""Evaluate metric specs over fake and real sources: how each registered kind is computed (3DGP ref §6).

``compute_metrics(specs, ctx)`` runs every spec and returns one :class:`MetricResult` each, on every process of the
job: each process computes its share of the samples (``ctx.shard``, ``stages.metrics.shard``), rank 0 assembles the
features / scores and computes the numbers, and the results are broadcast. What the metrics of one evaluation share
(the fakes' features, the cached real statistics, the networks) is :class:`stages.metrics.context.MetricContext`.

A metric that cannot be computed with what was given (IS without weights, NFS of an image set) comes back with
``unavailable`` set instead of a value; nothing is substituted silently. A statistic that is undefined (FID or KID of
fewer than 2 images) is an error, not a number.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from stages.common.errors import MetricUnavailable, ThreeDGPError
from stages.metrics.context import MetricContext
from stages.metrics.features import KID_MAX_REALS
from stages.metrics.frechet import fid_from_stats, kernel_inception_distance
from stages.metrics.sources import DETECTOR_BATCH, RENDER_UNIT

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
