"""CPU runtime settings for training: flush-to-zero on every OpenMP thread, glibc malloc thresholds (ref §15)."""
from __future__ import annotations

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
