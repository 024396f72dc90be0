"""CPU runtime settings: flush-to-zero on every OpenMP thread, glibc malloc settings for every command (ref §15)."""
from __future__ import annotations

import os
import platform

import numpy as np
import pytest
import torch

from stages.ops import cpu_runtime


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
    torch.set_flush_denormal(False)


def _denormals_left(x: torch.Tensor) -> int:
    return int(((x * 1.0) != 0).sum())  # a parallel op: DAZ/FTZ threads return 0 for denormal inputs


@pytest.mark.skipif(platform.system() != "Linux" or not torch.backends.openmp.is_available(),
                    reason="OpenMP worker threads are a Linux/OpenMP build matter")
def test_flush_denormals_reaches_the_openmp_workers(two_threads):
    torch.set_flush_denormal(False)
    den = torch.from_numpy(np.full(1 << 20, 1e-39, dtype=np.float32))  # all denormal
    _denormals_left(den)  # make sure the worker pool exists before flushing is switched on
    assert cpu_runtime.flush_denormals_all_threads()
    assert _denormals_left(den) == 0


def test_configure_is_a_no_op_off_cpu_and_malloc_tuning_is_idempotent():
    cpu_runtime.configure_cpu_training("meta")  # not CPU: nothing happens, nothing raises
    first = cpu_runtime.tune_glibc_malloc()
    assert cpu_runtime.tune_glibc_malloc() is first
    if platform.libc_ver()[0] == "glibc":
        assert first is True


_WORKER_THREAD_FAULTS = """
import resource, sys, threading
from stages.common.allocator import tune_glibc_malloc
if sys.argv[1] == "tuned":
    assert tune_glibc_malloc()
import torch
torch.ones(1 << 20).sum()  # torch's own threads exist now, as in the CLI
sizes = [24 << 20, 20 << 20, 24 << 20, 12 << 20, 16 << 20]  # one pass's activations: 96, 80, 96, 48, 64 MiB
faults = []
def work():
    for _ in range(5):  # five passes, each faulting in what it touches for the first time
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.empty(1)
        for size in sizes:
            y = torch.empty(size)
            y.fill_(1.0)
            del x
            x = y
        del x
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(*faults)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator and page-fault counts")
def test_big_blocks_of_a_worker_thread_are_reused_not_faulted_in_again():
    """The FID extractor runs Inception in a worker thread: without one shared arena, every activation above 64 MiB
    it frees is unmapped and the next pass page-faults it in again (11 M faults in a demo eval). The CLI tunes the
    allocator first thing (before torch's threads exist); a fresh interpreter does the same here."""
    import subprocess
    import sys

    pass_pages = (96 + 80 + 96 + 48 + 64 << 20) // 4096
    runs = {}
    for mode in ("plain", "tuned"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", _WORKER_THREAD_FAULTS, mode], capture_output=True, text=True,
                             check=True, env=env)
        runs[mode] = [int(v) for v in out.stdout.split()]
    assert min(runs["plain"]) > pass_pages // 2, runs  # the default allocator faults every pass in anew
    # Once the heap has grown (passes 3-5) it serves most of each pass from what earlier passes freed, where the
    # default allocator faults every page in again. Not always all of it: where the freed blocks fall in the heap
    # varies from run to run (torch's worker threads allocate too), and some runs here re-faulted one 96 MiB block
    # per pass (24,576 pages) or grew the heap once more in the fifth pass after a fourth with no fault at all.
    assert sum(runs["tuned"][2:]) < sum(runs["plain"][2:]) // 2, runs
    assert sum(runs["tuned"]) < sum(runs["plain"]) // 2, runs


def test_the_cli_tunes_the_allocator_before_anything_else(monkeypatch):
    from stages.common import allocator
    from threedgp_cli import app as app_module

    calls = []
    monkeypatch.setattr(allocator, "tune_glibc_malloc", lambda: calls.append("tuned") or True)
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["--version"])
    assert exit_info.value.code == 0 and calls == ["tuned"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_tuning_spawns_no_process():
    """`ctypes.util.find_library` runs ldconfig as a child: prep's killed-parent test saw it as a third worker."""
    import subprocess
    import sys

    code = ("import subprocess\n"
            "def refuse(*a, **k): raise AssertionError('spawned a process')\n"
            "subprocess.Popen = refuse\n"
            "from stages.common.allocator import tune_glibc_malloc\n"
            "assert tune_glibc_malloc()\n")
    subprocess.run([sys.executable, "-c", code], check=True)
