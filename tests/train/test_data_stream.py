"""The real-image stream: a function of (seed, position) only, split over ranks (style guide principle 10)."""
from __future__ import annotations

import itertools

import torch

from stages.train.data import ProgressSampler, reals_to_device, slice_reals
from stages.train.step import plan_batch


def test_stream_restarts_at_any_position_and_splits_over_ranks():
    full = ProgressSampler(10, seed=3, batch=4, rank=0, world_size=1)
    first = list(itertools.islice(iter(full), 6))  # 24 positions: 2.4 epochs
    assert sorted(sum(first, [])[:10]) == list(range(10))  # each epoch is a permutation
    assert sum(first, [])[:10] != sum(first, [])[10:20]  # ... a different one per epoch
    resumed = ProgressSampler(10, seed=3, batch=4, rank=0, world_size=1, start_nimg=12)
    assert list(itertools.islice(iter(resumed), 3)) == first[3:6]
    r0 = ProgressSampler(10, seed=3, batch=4, rank=0, world_size=2)
    r1 = ProgressSampler(10, seed=3, batch=4, rank=1, world_size=2)
    for a, b, whole in zip(iter(r0), iter(r1), first):
        assert a + b == whole
    assert ProgressSampler(10, seed=4, batch=4, rank=0, world_size=1).positions_to_indices(0, 10) != \
        full.positions_to_indices(0, 10)


def test_reals_are_rgb_plus_depth_in_unit_range():
    batch = {"image": torch.tensor([[[[0, 255]]] * 3], dtype=torch.uint8), "depth": torch.full([1, 1, 1, 2], -0.5),
             "label": torch.tensor([1]), "embedding": torch.ones(1, 5)}
    reals = reals_to_device(batch, torch.device("cpu"), has_depth=True, c_dim=3)
    assert reals["img"].shape == (1, 4, 1, 2)
    assert reals["img"][0, :3].flatten().tolist() == [-1, 1] * 3 and reals["img"][0, 3].flatten().tolist() == [-0.5] * 2
    assert reals["c"].tolist() == [[0.0, 1.0, 0.0]]
    assert slice_reals(reals, 0, 1)["embedding"].shape == (1, 5)


def test_batch_plans():
    p = plan_batch(64, 8, world_size=4, rank=1, group=4)
    assert (p.batch_gpu, p.rounds) == (8, 2)
    assert plan_batch(64, None, 4, 0, 4).rounds == 1
    import pytest

    from stages.common.errors import BadOptionError

    with pytest.raises(BadOptionError, match="--batch-gpu: 6 does not divide"):
        plan_batch(64, 6, 1, 0, 4)
    with pytest.raises(BadOptionError, match="--batch: 10 is not divisible by the 4 processes"):
        plan_batch(10, None, 4, 0, 4)
