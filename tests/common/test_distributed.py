"""Collectives and devices of a multi-GPU job, checked on a CPU (issue 18 rows 1, 2 and 12).

No GPU runs here, so the CUDA cases are mocked: what ``init_distributed`` asks of torch for ``--device cuda`` with
1 and 8 ranks, which process group it builds, and that a tensor on a device the group does not serve fails at
once (the NCCL-only group with a CPU stats buffer, which stopped every GPU run at its first tick). A scan of the
sources keeps every collective inside ``stages/common/distributed.py``, where the check lives.
"""
from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest
import torch

from stages.common import devices, distributed
from stages.common.errors import BadOptionError

ROOT = Path(__file__).resolve().parents[2]
COLLECTIVES = {"all_reduce", "all_gather", "all_gather_object", "broadcast", "broadcast_object_list", "barrier",
               "gather", "gather_object", "reduce", "scatter", "reduce_scatter", "all_to_all", "send", "recv",
               "init_process_group"}


def _fake_cuda(monkeypatch, count: int):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _fake_group(monkeypatch, world: int, rank: int):
    """Mock the process group creation; returns the calls made."""
    calls = {"set_device": [], "init": []}
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls["set_device"].append(str(d)))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls["init"].append(kw))
    return calls


def test_device_cuda_with_one_rank_gets_an_index(monkeypatch):
    """`--device cuda` (as --help suggests) must become cuda:0: torch.cuda.set_device refuses an index-less device."""
    _fake_cuda(monkeypatch, 1)
    calls = _fake_group(monkeypatch, world=1, rank=0)
    info = distributed.init_distributed("cuda")
    assert info.device == "cuda:0" and calls["set_device"] == ["cuda:0"] and calls["init"] == []


def test_device_cuda_with_eight_ranks_puts_each_on_its_own_gpu_in_a_group_serving_cpu_and_cuda(monkeypatch):
    _fake_cuda(monkeypatch, 8)
    calls = _fake_group(monkeypatch, world=8, rank=5)
    info = distributed.init_distributed("cuda")
    assert info.device == "cuda:5" and calls["set_device"] == ["cuda:5"]
    (init,) = calls["init"]
    assert init["backend"] == "cpu:gloo,cuda:nccl" and init["rank"] == 5 and init["world_size"] == 8
    assert init["timeout"] == datetime.timedelta(minutes=30)
    assert distributed.served_devices(init["backend"]) == {"cpu": "gloo", "cuda": "nccl"}


def test_auto_picks_the_local_rank_and_an_explicit_index_with_several_ranks_is_refused(monkeypatch):
    _fake_cuda(monkeypatch, 8)
    assert devices.process_device("auto", local_rank=3, world_size=8) == "cuda:3"
    assert devices.process_device(None, local_rank=0, world_size=1) == "cuda:0"
    with pytest.raises(BadOptionError, match="names one GPU for 8 processes"):
        devices.process_device("cuda:1", local_rank=2, world_size=8)
    assert devices.process_device("cuda:7", 0, 1) == "cuda:7"
    with pytest.raises(BadOptionError, match="only 8 CUDA device"):
        devices.check_device_spec("cuda:8")
    _fake_cuda(monkeypatch, 0)
    assert devices.process_device("auto", 1, 2) == "cpu"
    with pytest.raises(BadOptionError, match="no CUDA device is available"):
        devices.check_device_spec("cuda")
    with pytest.raises(BadOptionError, match="expected auto, cpu, cuda, cuda:N or mps"):
        devices.check_device_spec("gpu")


def test_mps_is_one_process_only(monkeypatch):
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.resolve_device("mps") == "mps"
    with pytest.raises(BadOptionError, match="mps serves one process"):
        devices.process_device("mps", 0, 2)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(BadOptionError, match="no Apple MPS device"):
        devices.check_device_spec("mps")


def test_a_cpu_tensor_in_an_nccl_only_group_fails_at_once_with_one_clear_line(monkeypatch):
    """The mistake that stopped every NCCL run at its first tick, reproduced on a CPU."""
    monkeypatch.setattr(distributed, "current_backend", lambda: "nccl")
    with pytest.raises(RuntimeError, match=r"all_reduce: a cpu tensor, but the process group \(nccl\) serves cuda"):
        distributed.check_served("all_reduce", [torch.zeros(2)])
    monkeypatch.setattr(distributed, "current_backend", lambda: "cpu:gloo,cuda:nccl")
    distributed.check_served("all_reduce", [torch.zeros(2)])  # the mixed group serves it (through gloo)
    monkeypatch.setattr(distributed, "current_backend", lambda: "gloo")
    with pytest.raises(RuntimeError, match="meta tensor"):
        distributed.check_served("broadcast", [torch.zeros(2, device="meta")])


def test_the_stats_reduction_builds_its_buffer_on_the_compute_device(monkeypatch):
    """Row 1 at the call site: the buffer StatsCollector reduces lives on its device ("meta" stands for CUDA)."""
    from stages.common.stats import StatsCollector

    class Reduced(Exception):
        pass

    seen = []

    def fake_reduce(tensor):
        seen.append(tensor.device.type)
        raise Reduced

    monkeypatch.setattr(distributed, "all_gather_object", lambda obj: [obj, obj])
    monkeypatch.setattr(distributed, "all_reduce_sum_", fake_reduce)
    stats = StatsCollector(device="meta")
    stats.report("Loss/G/adv", 1.0)  # a python float: the buffer is still built on the device
    with pytest.raises(Reduced):
        stats.reduce(world_size=2)
    assert seen == ["meta"]


def _calls_in(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in COLLECTIVES:
            base = node.func.value
            if isinstance(base, ast.Name) and base.id in ("dist", "torch_dist") or \
                    isinstance(base, ast.Attribute) and base.attr == "distributed":
                found.append((node.lineno, node.func.attr))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.startswith("torch.distributed") for n in names):
                found.append((node.lineno, "import torch.distributed"))
    return found


def test_every_collective_goes_through_the_checked_wrappers():
    """Only stages/common/distributed.py talks to torch.distributed (so every tensor passes check_served)."""
    offenders = []
    for path in sorted((ROOT / "stages").rglob("*.py")) + sorted((ROOT / "threedgp_cli").rglob("*.py")):
        if path == ROOT / "stages" / "common" / "distributed.py":
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line} {what}" for line, what in _calls_in(path)]
    assert offenders == []
    assert _calls_in(ROOT / "stages" / "common" / "distributed.py")  # the scan does see them where they are
