"""Metrics of a tiny generator computed by one process or by each rank of a spawned gloo group (issue 18).

Spawned processes re-import this module, so everything they run is defined at module level. The detector is a
fixed random projection (64 features) so that the test measures the sharding, not Inception's speed; the reals are
hashed and sharded in blocks of 8 (instead of 1024) so that a 16-item dataset spreads over two ranks.
"""
from __future__ import annotations

import torch

SMALL_BLOCK = 8


class ProjectionDetector:
    """Features = a fixed random projection of the uint8 pixels (CPU, float32 [N, 64])."""

    dim = 64
    path, sha256, resize = "projection", "projection-detector", "none"

    def __init__(self, resolution: int = 32):
        gen = torch.Generator().manual_seed(0)
        self.weight = torch.randn(3 * resolution * resolution, self.dim, generator=gen) / 30

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.cpu().float().flatten(1) / 255.0) @ self.weight


def evaluate(dataset_path: str, names: str) -> tuple[list[dict], dict]:
    """(results as dicts, rank 0's reference info) of ``names`` for a seeded tiny generator, on this process's
    shard of the job (the whole job without a process group)."""
    import stages.metrics.context as context

    saved = context.HASH_BLOCK, context.DETECTOR_BATCH
    context.HASH_BLOCK = context.DETECTOR_BATCH = SMALL_BLOCK  # reals only: fakes keep their units
    try:
        return _evaluate(dataset_path, names)
    finally:
        context.HASH_BLOCK, context.DETECTOR_BATCH = saved  # the calling test process goes on with the real units


def _evaluate(dataset_path: str, names: str) -> tuple[list[dict], dict]:
    from stages.common.seeding import seed_everything
    from stages.metrics import compute
    from stages.metrics.context import MetricContext
    from stages.data.dataset import LmdbDataset
    from stages.metrics.registry import parse_metric_list
    from stages.metrics.shard import Shard
    from stages.metrics.sources import DatasetSource, GeneratorSource
    from stages.nn.build import build_camera_prior, build_generator
    from stages.nn.config import get_preset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = get_preset("tiny")
    seed_everything(0)
    G = build_generator(cfg).eval().requires_grad_(False)
    reals = DatasetSource(LmdbDataset(dataset_path))
    fakes = GeneratorSource(G, build_camera_prior(cfg), reals.dataset.label_probs, "cpu", seed=5)
    ctx = MetricContext(fakes, reals, detector_loader=ProjectionDetector, cache_dir=None, progress=False,
                                shard=Shard.current())
    results = compute.compute_metrics(parse_metric_list(names), ctx)
    torch.set_num_threads(threads)
    return [r.to_dict() for r in results], dict(ctx.real_info)


def spawned(dataset_path: str, names: str, queue) -> None:
    """One rank of the spawned job: join the group, evaluate, rank 0 reports; the others report their shares too."""
    from stages.common.distributed import get_rank, init_distributed

    init_distributed("cpu")
    results, info = evaluate(dataset_path, names)
    queue.put((get_rank(), results, info))
