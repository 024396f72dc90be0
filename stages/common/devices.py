"""The one device parser of every command: ``auto | cpu | cuda[:N] | mps`` (issue 18 row 2, issue 20 §2).

Two steps, both here so that every stage says the same thing in the same words:

* :func:`check_device_spec` validates what the user typed (the syntax, and that the device exists on this machine)
  before any work; the message names the option.
* :func:`process_device` turns a checked spec into the torch device string of one process of a job of
  ``world_size`` processes: ``auto`` is ``cuda:<local_rank>`` when CUDA exists (else ``mps`` when asked for and
  present, else ``cpu``), a bare ``cuda`` is ``cuda:<local_rank>`` (``torch.cuda.set_device`` needs an index), and an
  explicit ``cuda:N`` with several processes is refused: every rank would land on GPU N (NCCL: "Duplicate GPU
  detected").

``mps`` (Apple GPUs) works for single-process commands; several processes on one MPS device have no collective
backend, so :func:`process_device` refuses it with more than one process.

Public API:
  DEVICE_HELP                                             # the --help text of every --device option
  device_syntax_error(spec) -> str | None                 # the message when ``spec`` is not a device spec (configs)
  check_device_spec(spec, option="--device") -> str       # normalised spec ("auto" for None/""), or BadOptionError
  process_device(spec, local_rank=0, world_size=1, option="--device") -> str   # "cpu" | "cuda:K" | "mps"
  resolve_device(spec, option="--device") -> str          # one process: check + process_device
"""
from __future__ import annotations

import os
import re

from stages.common.errors import BadOptionError

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps."
_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_syntax_error(spec: str | None) -> str | None:
    """The one message for a string that is not ``auto|cpu|cuda[:N]|mps`` (None when it is, or is None)."""
    if spec is None or _SPEC.fullmatch(str(spec).strip().lower()):
        return None
    if not str(spec).strip():
        return "an empty device (use auto, cpu, cuda, cuda:N or mps)"
    return f"expected auto, cpu, cuda, cuda:N or mps, got {spec!r}"


def check_device_spec(spec: str | None, option: str = "--device") -> str:
    """``spec`` checked against the syntax and this machine; None means ``auto``."""
    if device_syntax_error(spec):
        raise BadOptionError(option, device_syntax_error(spec))
    spec = "auto" if spec is None else str(spec).strip().lower()
    if spec.startswith("cuda"):
        count = _cuda_count()
        if count == 0:
            raise BadOptionError(option, f"{spec}: no CUDA device is available (use --device cpu)")
        if ":" in spec and int(spec.split(":")[1]) >= count:
            raise BadOptionError(option, f"{spec}: only {count} CUDA device(s) exist")
    if spec == "mps" and not _mps_available():
        raise BadOptionError(option, "mps: no Apple MPS device is available (use --device cpu)")
    return spec


def process_device(spec: str | None, local_rank: int = 0, world_size: int = 1, option: str = "--device") -> str:
    """The torch device of process ``local_rank`` (module docstring); ``spec`` as :func:`check_device_spec`."""
    spec = check_device_spec(spec, option)
    if spec == "auto":
        if _cuda_count() == 0:
            return "cpu"
        spec = "cuda"
    if spec == "cuda":
        count = _cuda_count()
        if local_rank >= count:
            raise BadOptionError(option, f"process {local_rank} of this node needs GPU {local_rank}, but only "
                                         f"{count} CUDA device(s) exist")
        return f"cuda:{local_rank}"
    if world_size > 1 and spec.startswith("cuda:") and os.environ.get("THREEDGP_DIST_BACKEND") != "gloo":
        # (a gloo-only group lets several ranks share one GPU: benchmarks/ddp_rehearsal.py does, NCCL refuses it)
        raise BadOptionError(option, f"{spec} names one GPU for {world_size} processes (each needs its own): use "
                                     f"--device cuda (process k on GPU k), or CUDA_VISIBLE_DEVICES to choose GPUs")
    if world_size > 1 and spec == "mps":
        raise BadOptionError(option, f"mps serves one process, not {world_size}")
    return spec


def resolve_device(spec: str | None, option: str = "--device") -> str:
    """The device of a single-process command (prep, export, one-process eval)."""
    return process_device(spec, 0, 1, option)
