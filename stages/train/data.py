"""Real-image stream for training: a deterministic, resumable sampler and device transfer (3DGP ref §5.4).

The order of real images is a function of (seed, global image position) only: epoch e uses the permutation
``randperm(N, seed=(seed, e))``, and position p of the stream is item ``perm_{p // N}[p % N]``. An iteration at
``cur_nimg`` reads positions ``[cur_nimg, cur_nimg + batch)``, rank r the slice ``[r * per_rank, (r+1) * per_rank)``.
So a resumed run (which restarts the stream at its saved ``cur_nimg``) and a run with a different number of
processes see exactly the same images (style guide principle 10).

For a CUDA device the loader collates into pinned (page-locked) memory and every copy to the device is
``non_blocking``: a copy from pageable memory, or one without ``non_blocking``, makes the host wait for the GPU at
every micro-batch (issue 18 row 6).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from stages.common.seeding import derive_seed
from stages.nn.inputs import one_hot

SHUFFLE_SEED_SALT = 0x5A3B1E  # derive_seed(run.seed, salt, epoch): the permutation of epoch e


class ProgressSampler:
    """Batch sampler yielding this rank's index list for consecutive iterations, starting at ``start_nimg``."""

    def __init__(self, num_items: int, seed: int, batch: int, rank: int, world_size: int, start_nimg: int = 0):
        assert num_items > 0 and batch % world_size == 0
        self.num_items = num_items
        self.seed = seed
        self.batch = batch
        self.per_rank = batch // world_size
        self.rank = rank
        self.start_nimg = start_nimg
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            rng = np.random.Generator(np.random.PCG64(derive_seed(self.seed, SHUFFLE_SEED_SALT, epoch)))
            self._perm_cache = {epoch: rng.permutation(self.num_items)}  # keep one epoch cached
        return self._perm_cache[epoch]

    def positions_to_indices(self, start: int, count: int) -> list[int]:
        """Dataset indices of stream positions ``[start, start + count)``."""
        out = []
        for p in range(start, start + count):
            out.append(int(self._perm(p // self.num_items)[p % self.num_items]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        nimg = self.start_nimg
        while True:
            yield self.positions_to_indices(nimg + self.rank * self.per_rank, self.per_rank)
            nimg += self.batch


def make_loader(dataset, seed: int, batch: int, rank: int, world_size: int, start_nimg: int, workers: int,
                device: torch.device | str | None = None):
    """An endless DataLoader over :class:`ProgressSampler` batches (default collate of the item dicts), pinned for
    a CUDA ``device`` (None: whenever CUDA is available)."""
    sampler = ProgressSampler(len(dataset), seed, batch, rank, world_size, start_nimg)
    pin = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    kwargs = dict(num_workers=workers, pin_memory=pin)
    if workers > 0:
        kwargs.update(prefetch_factor=2, persistent_workers=False)
    return iter(torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **kwargs))


def reals_to_device(batch: dict, device: torch.device, has_depth: bool, c_dim: int) -> dict:
    """Collated items -> ``img`` float ``[B, 3(+1), R, R]`` in [-1, 1], one-hot ``c`` or None, ``embedding`` or None.

    RGB uint8 -> x / 127.5 - 1; depth is already in [-1, 1) (ref §3.3) and is concatenated before patch
    extraction, so image and depth share one resampling (ref §3.4).
    """
    img = batch["image"].to(device, non_blocking=True).to(torch.float32) / 127.5 - 1  # [B, 3, R, R]
    if has_depth:
        img = torch.cat([img, batch["depth"].to(device, non_blocking=True).float()], dim=1)  # [B, 4, R, R]
    c = None
    if c_dim > 0:
        c = one_hot(batch["label"].to(device, non_blocking=True), c_dim)
    emb = batch.get("embedding")
    emb = emb.to(device, non_blocking=True).float() if emb is not None else None
    return {"img": img, "c": c, "embedding": emb}


def slice_reals(reals: dict, start: int, stop: int) -> dict:
    """Rows ``[start, stop)`` of every tensor of a reals dict."""
    return {k: (v[start:stop] if v is not None else None) for k, v in reals.items()}
