"""glibc ``malloc`` settings that keep big freed blocks for reuse (3DGP ref §15; no torch import, so the CLI can
apply them before torch starts any thread).

glibc returns every freed block above its mmap threshold (at most 32 MiB by default, i.e. exactly the size of a
[131072, 64] float tensor of the tri-plane MLP) to the kernel, so each training step page-faulted its big
temporaries in again (a third of (ii) went to first-touch page faults). Raising the mmap and trim thresholds keeps
that memory in the heap; the process then holds on to its peak working set. A thread other than the main one
allocates from its own arena, whose heaps hold at most 64 MiB: bigger blocks are mmapped and unmapped on free
whatever the thresholds say. Inception's activations at batch 16 live in such a thread (the FID extractor's network
worker): 11 M page faults, a fifth of the CPU time of the demo's eval; `prep`'s embedder did the same. So all
threads share the main arena (M_ARENA_MAX 1): `eval --metrics fid16` on the demo's toy set 11.1 M -> 0.6 M page
faults, 90 -> 79 s; `prep toy` of 1000 scenes 41 -> 21-27 s; demo training unchanged (27.3-27.6 against
27.1-28.3 sec/kimg on one thread; benchmarks/RESULTS.md, "make demo" §29).
"""
from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter ids (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 30  # allocations below 1 GiB come from the reusable heap
TRIM_THRESHOLD_BYTES = 1 << 30  # give memory back to the kernel only above 1 GiB of free heap top
TOP_PAD_BYTES = 256 << 20  # grow the heap in 256 MiB steps

_malloc_tuned: bool | None = None  # None = not tried yet


def tune_glibc_malloc() -> bool:
    """Keep large freed blocks in the glibc heap instead of unmapping them, for every thread (one arena); True if
    applied (once per process). ``3dgp`` calls it before anything else (:func:`threedgp_cli.app.main`): the arena
    limit only reaches threads that have not yet needed an arena of their own, i.e. it must come before torch starts
    its threads; training (:func:`stages.ops.cpu_runtime.configure_cpu_training`), prep, eval and export call it
    again for Python callers (the thresholds alone still help there)."""
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    try:  # the process's own symbols: ctypes.util.find_library would run ldconfig as a child process
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl without mallopt)
        logger.debug("mallopt unavailable; keeping the default allocator settings")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES), (M_ARENA_MAX, 1)))
    _malloc_tuned = ok
    logger.debug("glibc malloc thresholds %s", "raised" if ok else "could not be raised")
    return ok
