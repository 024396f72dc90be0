"""Process-wide runtime settings of a training process, applied and logged in one place (issue 11, issue 12 §4).

* matmul precision: TF32 off for the official ``fp32`` (3DGP ref §5.3), on for ``tf32`` and ``bf16``
  (:func:`stages.nn.precision.configure_matmul_precision`);
* cuDNN autotuning on (ref §5.3), unless ``THREEDGP_CUDNN_BENCHMARK=0``: every new convolution shape (each layer,
  batch size and direction) is timed once per process, which costs a CUDA job its first minutes; a steady run gains
  it back, a short one (the GPU check's two processes sharing one GPU spent over 70 s of the first tick on it,
  RESULTS.md "GPU check", second run) does not;
* on CPU: flush-to-zero on every OpenMP thread and glibc malloc thresholds (:mod:`stages.ops.cpu_runtime`), and
  the thread count of ``--threads`` (``auto``: a governor that follows the cores other processes leave free,
  :mod:`stages.common.cpu_share`).
"""
from __future__ import annotations

import logging
import os

import torch

from stages.common.errors import ThreeDGPError
from stages.nn.precision import configure_matmul_precision
from stages.ops.cpu_runtime import configure_cpu_training

logger = logging.getLogger(__name__)
CUDNN_BENCHMARK_ENV = "THREEDGP_CUDNN_BENCHMARK"


def cudnn_benchmark_wanted() -> bool:
    """Whether cuDNN autotuning is on for training: yes unless ``$THREEDGP_CUDNN_BENCHMARK`` is 0 / false / no / off
    (a clear error for any other value)."""
    raw = os.environ.get(CUDNN_BENCHMARK_ENV, "1").strip().lower()
    if raw in ("", "1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ThreeDGPError(f"{CUDNN_BENCHMARK_ENV}={raw}: expected 1 or 0")


def configure_runtime(device: torch.device, precision: str, threads: str | None = None, processes: int = 1) -> dict:
    """Apply the settings above for a run on ``device``; returns (and logs at debug level) what was set, with the
    thread governor under ``"governor"`` (None unless ``threads`` is auto on CPU; ``processes``: the run's processes
    on this node, which share the free cores)."""
    configure_matmul_precision(precision)
    torch.backends.cudnn.benchmark = cudnn_benchmark_wanted()
    configure_cpu_training(device)  # no-op off CPU
    governor = None
    if torch.device(device).type == "cpu":
        from stages.common.cpu_share import apply_threads, parse_threads

        governor = apply_threads(parse_threads(threads), lambda: configure_cpu_training("cpu"), processes)
    settings = {"precision": precision, "tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_benchmark": torch.backends.cudnn.benchmark, "threads": torch.get_num_threads()}
    logger.debug("runtime: %s", settings)
    return {**settings, "governor": governor}
