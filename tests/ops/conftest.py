"""Op tests run many tiny float64 kernels: one torch thread avoids oversubscription on shared CPUs."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def cpu_kernels():
    """Skip a test that checks the CPU kernels themselves where no C compiler exists (they then fall back to the
    reference, which the other tests cover)."""
    from stages.ops._cpu_build import find_compiler

    if find_compiler() is None:
        pytest.skip("no C compiler: the CPU kernels fall back to their PyTorch reference")
