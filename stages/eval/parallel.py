"""``3dgp eval --gpus N``: N processes on this node, each evaluating its share (issue 18 "Evaluation at scale").

The processes are spawned like ``3dgp train --gpus N`` (``stages.common.distributed.spawn``: torchrun-style
environment, one device per process, CPU processes share the cores); rank 0 sends its result back through a queue,
and a user-facing error of any rank comes back as the same one-line error. Under ``torchrun`` (``WORLD_SIZE`` set)
every process is already a rank: ``--gpus`` is not used.
"""
from __future__ import annotations

import os

from stages.common.errors import BadOptionError, ThreeDGPError


def under_launcher() -> bool:
    """Whether this process is one rank of a torchrun (or spawned) job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _check_gpus(req) -> None:
    from stages.common.devices import check_device_spec

    spec = check_device_spec(req.device)
    import torch

    on_cuda = spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available())
    if on_cuda and req.gpus > torch.cuda.device_count():
        raise BadOptionError("--gpus", f"{req.gpus} processes but only {torch.cuda.device_count()} CUDA device(s)")
    if spec == "mps":
        raise BadOptionError("--gpus", "mps serves one process: use --gpus 1")


def _worker(req, specs, results, errors) -> None:
    from stages.eval import run_here

    try:
        result = run_here(req, specs)
        if int(os.environ.get("RANK", "0")) == 0:
            results.put(result)
    except ThreeDGPError as exc:
        errors.put(str(exc))
        raise


def run_spawned(req, specs):
    """Run ``req`` in ``req.gpus`` spawned processes; rank 0's EvalResult."""
    import torch.multiprocessing as mp

    from stages.common.distributed import spawn

    _check_gpus(req)
    ctx = mp.get_context("spawn")
    results, errors = ctx.SimpleQueue(), ctx.SimpleQueue()
    try:
        spawn(_worker, req.gpus, (req, specs, results, errors))
    except Exception:
        if not errors.empty():
            raise ThreeDGPError(errors.get()) from None
        raise
    if results.empty():
        raise ThreeDGPError("eval: the processes ended without a result")
    return results.get()
