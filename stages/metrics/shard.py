"""Metrics sharded over every process of a job (issue 18 "Evaluation at scale").

Each of N processes computes its share of a metric's samples, and rank 0 assembles the result:

* fakes: sample indices ``0 .. n-1`` are split into N contiguous ranges (:meth:`Shard.part`), on multiples of a
  unit where samples are coupled (NFS renders chunks of 4 images whose density cut is shared). Since sample i is
  the same image whatever the batch and the process (``stages.metrics.sources``), the assembled features equal a
  single process's, row for row, and FID/KID/IS/NFS/mvc/depth do not depend on N;
* reals: the dataset is split the same way on blocks of :data:`HASH_BLOCK` images; moments (sum, outer-product sum,
  count) are summed over ranks, raw rows (KID) are gathered;
* per-sample results (features, scores, depth maps) are gathered to rank 0 in rank order
  (:func:`stages.common.distributed.gather_rows`), the final numbers are computed there once and broadcast, so every
  rank returns the same results (training's rollback rule and best snapshot agree on every rank).

Features travel as the CPU tensors the detector returns (through the group's CPU backend, gloo); scores and depth
maps travel on the device they were computed on.

Public API:
  Shard(rank=0, world_size=1)                 # this process's place; Shard.current() from the process group
  shard.part(n, unit=1) -> range              # this rank's contiguous share of range(n)
  shard.gather(tensor) -> tensor | None       # rows of every rank on rank 0 (None elsewhere)
  shard.sum_(tensor)                          # in-place sum over ranks
  shard.broadcast(obj) -> obj                 # rank 0's object everywhere
  shard.gather_objects(obj) -> list | None    # every rank's object on rank 0 (None elsewhere)
"""
from __future__ import annotations

from dataclasses import dataclass

HASH_BLOCK = 1024  # reals are hashed per block of this many images; shards of the reals start on a block


@dataclass(frozen=True)
class Shard:
    """This process's place in the job that computes the metrics (module docstring)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> "Shard":
        """The shard of this process in its process group (rank 0 of 1 without one)."""
        from stages.common.distributed import get_rank, get_world_size

        return cls(get_rank(), get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part(self, n: int, unit: int = 1) -> range:
        """This rank's contiguous share of ``range(n)``, split on multiples of ``unit`` as evenly as possible."""
        units = -(-n // unit)
        lo, hi = units * self.rank // self.world_size, units * (self.rank + 1) // self.world_size
        return range(min(lo * unit, n), min(hi * unit, n))

    def gather(self, tensor):
        """``[n_r, ...]`` rows of every rank, concatenated in rank order, on rank 0; None on the others."""
        if self.world_size == 1:
            return tensor
        from stages.common.distributed import gather_rows

        return gather_rows(tensor.contiguous(), dst=0)

    def sum_(self, tensor) -> None:
        """In-place sum over ranks."""
        if self.world_size > 1:
            from stages.common.distributed import all_reduce_sum_

            all_reduce_sum_(tensor)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.world_size == 1:
            return obj
        from stages.common.distributed import broadcast_object

        return broadcast_object(obj)

    def gather_objects(self, obj) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the others (small python objects only)."""
        if self.world_size == 1:
            return [obj]
        from stages.common.distributed import all_gather_object

        gathered = all_gather_object(obj)
        return gathered if self.is_main else None
