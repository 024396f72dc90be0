"""torch.distributed helpers: one process per device, rank 0 alone writes and prints (3DGP ref §5.3, §5.4).

Launching (the lead copies this into the README):

* one machine, N GPUs, processes spawned by 3dgp itself::

      3dgp train --data DS --preset imagenet --gpus 4

* one machine with torchrun (same result)::

      torchrun --standalone --nproc_per_node=4 -m threedgp_cli train --data DS --preset imagenet

* several machines (run on every node; NODE_RANK = 0..NNODES-1, MASTER = node 0's address)::

      torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \\
          --rdzv_backend=c10d --rdzv_endpoint=$MASTER:29500 --rdzv_id=3dgp-run \\
          -m threedgp_cli train --data DS --preset imagenet --outdir /shared/runs

  ``--outdir`` must be on a file system all nodes see (only global rank 0 writes, but every rank reads the
  resume state). The global ``--batch`` stays the same whatever the number of processes; each process runs
  ``batch / world_size`` images per step, in rounds of ``--batch-gpu`` (gradient accumulation).

The backend is NCCL on CUDA and gloo on CPU. Gradients are averaged with one ``all_reduce`` per phase (no DDP
wrapper: the multi-phase loop accumulates over rounds itself, StyleGAN3 style).
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int  # global rank
    world_size: int  # number of processes
    local_rank: int  # rank on this node (device index)
    device: str  # torch device string for this process

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def get_rank() -> int:
    """Global rank (0 without a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group described by the torchrun environment (RANK/WORLD_SIZE/...), if any.

    ``device`` None picks ``cuda:<local_rank>`` when CUDA exists, else ``cpu``.
    """
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
        logger.debug("rank %d/%d joined (%s)", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    """Leave the process group, if any."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op for one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean_(tensor) -> None:
    """In-place mean over processes (no-op for one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
        tensor.div_(dist.get_world_size())


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s python object on every rank."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def free_port() -> int:
    """An unused TCP port on localhost for a single-node rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_entry(local_rank: int, world_size: int, port: int, fn, args) -> None:
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch

    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))  # CPU processes share the cores
    try:
        fn(*args)
    finally:
        shutdown_distributed()


def spawn(fn, nprocs: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``nprocs`` processes on this node with torchrun-style environment variables."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.start_processes(_spawn_entry, args=(nprocs, port, fn, args), nprocs=nprocs, join=True, start_method="spawn")
