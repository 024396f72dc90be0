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

Process groups (:func:`backend_for`): on CUDA one group serves both devices, ``cpu:gloo,cuda:nccl`` (NCCL for
CUDA tensors, gloo for CPU tensors and for python objects); on CPU, gloo. ``THREEDGP_DIST_BACKEND=gloo`` forces
gloo everywhere (the GPU check's rehearsal: two processes on one GPU, which NCCL refuses). The collective timeout
is ``THREEDGP_DIST_TIMEOUT_MIN`` minutes (default 30): metrics are sharded over every rank, so no rank waits for
another's whole evaluation.

Every collective of the project goes through the functions below (a test reads the sources to keep it so): each
checks that its tensors live on a device the group serves (:func:`check_served`), so a CPU tensor sent to an
NCCL-only group fails at once with one clear line on any machine, CPU CI included, instead of at a GPU job's first
tick. Gradients are averaged with one ``all_reduce`` per phase (no DDP wrapper: the multi-phase loop accumulates over
rounds itself, StyleGAN3 style).
"""
from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)
BACKEND_ENV = "THREEDGP_DIST_BACKEND"
RECORD_ENV = "THREEDGP_RECORD_COLLECTIVES"  # a folder: each rank appends "<op> <device types>" lines (tests)
TIMEOUT_ENV = "THREEDGP_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 30.0
_SINGLE_BACKENDS = {"gloo": ("cpu", "cuda"), "nccl": ("cuda",), "mpi": ("cpu", "cuda")}
_state: dict = {"backend": None}  # the backend string this process's group was made with
_observers: list[Callable[[str, list], None]] = []  # test hooks: (collective, tensors) before each call


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


def local_world_size(dist: DistInfo) -> int:
    """Processes of this job on this node (torchrun's and :func:`spawn`'s ``LOCAL_WORLD_SIZE``; 1 alone)."""
    if dist.world_size <= 1:
        return 1
    try:
        return max(1, min(dist.world_size, int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))))
    except ValueError:
        return dist.world_size


def _dist():
    """``torch.distributed`` when this process is in a group, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def get_rank() -> int:
    """Global rank (0 without a process group)."""
    dist = _dist()
    return dist.get_rank() if dist else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    dist = _dist()
    return dist.get_world_size() if dist else 1


def backend_for(device: str) -> str:
    """The process-group backend for processes computing on ``device`` (module docstring)."""
    forced = os.environ.get(BACKEND_ENV, "").strip()
    if forced:
        if forced not in ("gloo", "cpu:gloo,cuda:nccl"):
            raise ValueError(f"{BACKEND_ENV}: expected gloo or cpu:gloo,cuda:nccl, got {forced!r}")
        return forced
    return "cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo"


def served_devices(backend: str) -> dict[str, str]:
    """Device type -> the backend that carries its tensors, for a backend string ("gloo", "cpu:gloo,cuda:nccl")."""
    backend = backend.lower()
    if ":" in backend:
        return dict(part.strip().split(":", 1) for part in backend.split(","))
    return {device: backend for device in _SINGLE_BACKENDS.get(backend, ("cpu", "cuda"))}


def current_backend() -> str | None:
    """The backend string of this process's group (None without one)."""
    dist = _dist()
    if dist is None:
        return None
    return _state["backend"] or str(dist.get_backend())


def check_served(op: str, tensors) -> None:
    """Raise at once when a tensor of collective ``op`` lives on a device the process group does not serve."""
    tensors = list(tensors)
    for hook in _observers:
        hook(op, tensors)
    backend = current_backend()
    if backend is None:
        return
    served = served_devices(backend)
    for t in tensors:
        if t.device.type not in served:
            raise RuntimeError(f"{op}: a {t.device.type} tensor, but the process group ({backend}) serves "
                               f"{', '.join(sorted(served))} tensors only")


@contextmanager
def observe_collectives(hook: Callable[[str, list], None]):
    """Call ``hook(op, tensors)`` before every collective of this process (tests)."""
    _observers.append(hook)
    try:
        yield
    finally:
        _observers.remove(hook)


def _record_to(path: str, backend: str) -> None:
    """Append one line per collective of this process to ``path``: the backend, the op and its tensors' devices."""
    def hook(op: str, tensors: list) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{backend} {op} {','.join(t.device.type for t in tensors) or '-'}\n")

    _observers.append(hook)


def collective_timeout() -> datetime.timedelta:
    """How long a collective may wait for the slowest rank (``THREEDGP_DIST_TIMEOUT_MIN``, default 30 min)."""
    return datetime.timedelta(minutes=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN)))


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group described by the torchrun environment (RANK/WORLD_SIZE/...), if any.

    ``device`` is a ``--device`` spec (``auto``/None, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), resolved per process
    by :func:`stages.common.devices.process_device` (``cuda`` -> ``cuda:<local_rank>``)."""
    import torch
    import torch.distributed as dist

    from stages.common.devices import process_device

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = process_device(device, local_rank, world_size)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world_size > 1 and not dist.is_initialized():
        backend = backend_for(device)
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=collective_timeout())
        _state["backend"] = backend
        logger.debug("rank %d/%d joined (%s)", rank, world_size, backend)
        if os.environ.get(RECORD_ENV):
            _record_to(os.path.join(os.environ[RECORD_ENV], f"rank{rank}.txt"), backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    """Leave the process group, if any."""
    dist = _dist()
    if dist is not None:
        dist.destroy_process_group()
    _state["backend"] = None


def finish_distributed() -> None:
    """End a rank's part of a job whose work succeeded: meet the other ranks, then leave the group (no-op without
    one). Leaving it to interpreter exit let a gloo rank abort after a complete run ("terminate called without an
    active exception": its threads torn down unjoined), which torchrun reports as a failed job; and a rank that
    left while another still wrote could break that one's last collective."""
    barrier()
    shutdown_distributed()


def barrier() -> None:
    """Wait for every process (no-op for one process)."""
    dist = _dist()
    if dist is not None:
        check_served("barrier", [])
        dist.barrier()


def all_reduce_sum_(tensor) -> None:
    """In-place sum over processes (no-op for one process)."""
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        check_served("all_reduce", [tensor])
        dist.all_reduce(tensor)


def all_reduce_mean_(tensor) -> None:
    """In-place mean over processes (no-op for one process)."""
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        all_reduce_sum_(tensor)
        tensor.div_(dist.get_world_size())


def broadcast_(tensor, src: int = 0) -> None:
    """Overwrite ``tensor`` with rank ``src``'s (no-op for one process)."""
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        check_served("broadcast", [tensor])
        dist.broadcast(tensor, src=src)


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s python object on every rank."""
    dist = _dist()
    if dist is None:
        return obj
    check_served("broadcast_object", [])
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj) -> list:
    """Every rank's python object, in rank order (``[obj]`` for one process)."""
    dist = _dist()
    if dist is None:
        return [obj]
    check_served("all_gather_object", [])
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_rows(tensor, dst: int = 0, chunk_rows: int = 16384):
    """Every rank's ``[n_r, ...]`` rows (n_r may differ) concatenated in rank order on rank ``dst``; None elsewhere.

    One size exchange, then padded ``all_gather`` rounds of at most ``chunk_rows`` rows per rank on the tensor's own
    device (every backend implements all_gather for the devices it serves, not all implement gather); a round's
    parts are dropped at once by the other ranks, so no rank ever holds more than ``world * chunk_rows`` foreign rows."""
    import torch

    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return tensor
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    check_served("all_gather", [size])
    dist.all_gather(sizes, size)
    counts = [int(s) for s in torch.cat(sizes).cpu().tolist()]
    kept: list[list] = [[] for _ in range(world)]
    for lo in range(0, max(counts), chunk_rows):
        piece = tensor[lo:lo + chunk_rows]
        padded = tensor.new_zeros((min(chunk_rows, max(counts) - lo), *tensor.shape[1:]))
        padded[: len(piece)] = piece
        parts = [torch.empty_like(padded) for _ in range(world)]
        check_served("all_gather", [padded])
        dist.all_gather(parts, padded)
        if rank == dst:
            for r, part in enumerate(parts):
                kept[r].append(part[: max(0, min(counts[r] - lo, len(part)))])
    if rank != dst:
        return None
    return torch.cat([row for per_rank in kept for row in per_rank]) if max(counts) else tensor[:0]


def free_port() -> int:
    """An unused TCP port on localhost for a single-node rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _console_logging(level: int) -> None:
    """Rank 0 of a spawned job prints the ``stages`` log records (tick lines, metrics) on stderr like the parent
    process would: a spawned child starts without the CLI's handlers."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    root = logging.getLogger("stages")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _spawn_entry(local_rank: int, world_size: int, port: int, fn, args, log_level: int = logging.INFO,
                 done_dir: str | None = None) -> None:
    import faulthandler

    faulthandler.enable()  # a rank killed by a signal prints every thread's Python stack on stderr
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if local_rank == 0:
        _console_logging(log_level)
    import torch

    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))  # CPU processes share the cores
    try:
        fn(*args)
        if done_dir is not None:
            open(os.path.join(done_dir, str(local_rank)), "w").close()  # this rank's work is complete
        finish_distributed()  # no rank tears its group down while another still computes or writes
    finally:
        shutdown_distributed()  # after a failure too (a no-op once finished)


def spawn(fn, nprocs: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``nprocs`` processes on this node with torchrun-style environment variables.

    As with ``torch.multiprocessing.start_processes``, a process that ends with an exception or a signal stops the
    others and raises here -- unless every process had already returned from ``fn``: a failure while the processes
    leave their group and exit (seen once on a 2-core CI host: rank 1 aborted with "terminate called without an active
    exception" in teardown, after the run had written everything) costs nothing then, and is a warning. The
    processes meet in a barrier after ``fn``, so none tears its group down while another still works."""
    import tempfile

    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    port = free_port()
    level = logging.getLogger("stages").getEffectiveLevel()
    with tempfile.TemporaryDirectory(prefix="3dgp-spawn-") as done_dir:
        context = mp.start_processes(_spawn_entry, args=(nprocs, port, fn, args, level, done_dir), nprocs=nprocs,
                                     join=False, start_method="spawn")
        try:
            while not context.join():
                pass
        except ProcessException as exc:
            if len(os.listdir(done_dir)) < nprocs:
                raise
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            logger.warning("process %d failed after every process had finished its work (%s); nothing is lost",
                           exc.error_index, lines[-1])
