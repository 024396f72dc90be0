"""Process-wide runtime settings of a training process, applied and logged in one place (issue 11, issue 12 §4).

* matmul precision: TF32 off for the official ``fp32`` (3DGP ref §5.3), on for ``tf32`` and ``bf16``
  (:func:`stages.nn.precision.configure_matmul_precision`);
* cuDNN autotuning on (ref §5.3);
* on CPU: flush-to-zero on every OpenMP thread and glibc malloc thresholds (:mod:`stages.ops.cpu_runtime`), and
  the thread count of ``--threads`` (``auto``: a governor that follows the cores other processes leave free,
  :mod:`stages.common.cpu_share`).
"""
from __future__ import annotations

import logging

import torch

from stages.nn.precision import configure_matmul_precision
from stages.ops.cpu_runtime import configure_cpu_training

logger = logging.getLogger(__name__)


def configure_runtime(device: torch.device, precision: str, threads: str | None = None, processes: int = 1) -> dict:
    """Apply the settings above for a run on ``device``; returns (and logs at debug level) what was set, with the
    thread governor under ``"governor"`` (None unless ``threads`` is auto on CPU; ``processes``: the run's processes
    on this node, which share the free cores)."""
    configure_matmul_precision(precision)
    torch.backends.cudnn.benchmark = True
    configure_cpu_training(device)  # no-op off CPU
    governor = None
    if torch.device(device).type == "cpu":
        from stages.common.cpu_share import apply_threads, parse_threads

        governor = apply_threads(parse_threads(threads), lambda: configure_cpu_training("cpu"), processes)
    settings = {"precision": precision, "tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_benchmark": torch.backends.cudnn.benchmark, "threads": torch.get_num_threads()}
    logger.debug("runtime: %s", settings)
    return {**settings, "governor": governor}
