"""Process-wide CPU settings for fast training on CPU (3DGP ref §15, issue 5 acceptance 4).

Two things made the SMALL training step much slower than it needs to be on CPU, without changing any result:

* denormal floats (tiny Adam moments and gradients, the transmittance of opaque rays) make float math up to ~20x
  slower. ``torch.set_flush_denormal`` sets the FTZ/DAZ bits of the *calling* thread only; the OpenMP worker
  threads that run the other halves of every parallel op inherit them only if they are created afterwards. So we
  also set them inside one OpenMP parallel region of torch's own OpenMP runtime (via ``GOMP_parallel``), which
  reaches the workers that already exist;
* glibc ``malloc`` returns big freed blocks to the kernel, so every training step page-faulted its big temporaries
  in again (a third of (ii)): :func:`stages.common.allocator.tune_glibc_malloc` keeps them in the heap.

:func:`configure_cpu_training` applies both; it is idempotent, and a no-op on non-glibc systems for the second.
"""
from __future__ import annotations

import ctypes
import logging

import torch

from stages.common.allocator import tune_glibc_malloc

logger = logging.getLogger(__name__)


def openmp_library() -> ctypes.CDLL | None:
    """The OpenMP runtime torch loaded (libgomp, or LLVM/Intel's, which export the GOMP ABI too), if any."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:  # not Linux
        return None
    for path in sorted(paths):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(("libgomp", "libomp", "libiomp5")):
            try:
                lib = ctypes.CDLL(path)
                lib.GOMP_parallel  # noqa: B018 -- raises AttributeError when the symbol is missing
                return lib
            except (OSError, AttributeError):
                continue
    return None


_GOMP_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def flush_denormals_all_threads() -> bool:
    """Set flush-to-zero on this thread and on every OpenMP worker of torch's intra-op pool; True if the workers
    were reached (False: only this thread, e.g. no OpenMP runtime found)."""
    torch.set_flush_denormal(True)
    lib = openmp_library()
    if lib is None:
        logger.debug("no OpenMP runtime found; flush-to-zero set on the calling thread only")
        return False
    callback = _GOMP_FN(lambda _: torch.set_flush_denormal(True))  # runs once in each thread of the team
    lib.GOMP_parallel.argtypes = [_GOMP_FN, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    lib.GOMP_parallel.restype = None
    lib.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    return True


def configure_cpu_training(device: torch.device | str = "cpu") -> None:
    """Flush denormals on every intra-op thread and tune the allocator when training on CPU (no-op for other
    devices) (3DGP ref §15). Call it again after ``torch.set_num_threads`` raises the thread count."""
    if torch.device(device).type != "cpu":
        return
    flush_denormals_all_threads()
    tune_glibc_malloc()
