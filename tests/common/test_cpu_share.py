"""Sizing torch's CPU threads to the cores other processes leave free (issue 21 §3)."""
from __future__ import annotations

import pytest
import torch

from stages.common import cpu_share
from stages.common.errors import ThreeDGPError


def _fake_proc_stat(monkeypatch, tmp_path, busy_ticks: dict[int, int]):
    lines = ["cpu  1 2 3 4 5 6 7 8 9 10"]
    for n, ticks in busy_ticks.items():  # user nice system idle iowait irq softirq steal
        lines.append(f"cpu{n} {ticks} 0 0 1000 7 0 0 0 0 0")
    path = tmp_path / "stat"
    path.write_text("\n".join(lines) + "\nintr 1 2 3\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(path, *a, **k) if p == "/proc/stat"
                        else real_open(p, *a, **k))


def test_others_subtracts_our_own_cpu_time(monkeypatch, tmp_path):
    clock = iter([100.0, 102.0])
    own = iter([5.0, 6.0])  # we used 1 CPU second of the 2-second interval
    monkeypatch.setattr(cpu_share.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(cpu_share, "_own_seconds", lambda: next(own))
    monkeypatch.setattr(cpu_share.os, "sysconf", lambda name: 100)
    _fake_proc_stat(monkeypatch, tmp_path, {0: 1000, 1: 1000})
    share = cpu_share.CpuShare(cores=[0, 1])
    _fake_proc_stat(monkeypatch, tmp_path, {0: 1200, 1: 1100})  # 3 busy CPU seconds in 2 s
    assert share.others() == pytest.approx((3.0 - 1.0) / 2.0)


def test_others_is_none_without_proc_stat(monkeypatch):
    monkeypatch.setattr(cpu_share, "_busy_seconds", lambda cores: None)
    assert cpu_share.CpuShare(cores=[0]).others() is None


@pytest.mark.parametrize("cores,others,want", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 3.5, 1),
                                               (8, 2.2, 6)])
def test_threads_for(cores, others, want):
    assert cpu_share.threads_for(cores, others) == want


@pytest.mark.parametrize("cores,others,processes,want", [(2, 0.0, 2, 1), (16, 0.0, 4, 4), (16, 3.6, 4, 3),
                                                         (2, 1.0, 2, 1), (3, 0.0, 2, 1)])
def test_threads_for_splits_the_free_cores_between_the_runs_processes(cores, others, processes, want):
    assert cpu_share.threads_for(cores, others, processes) == want


def test_governor_counts_its_sibling_processes_as_its_own_run():
    # Two processes of one run on 2 cores, each at 1 thread: each sees the other's core as busy. Without knowing
    # about its sibling, each would read "1 core used by others" and keep 1 thread -- right by chance; at the first
    # look (nothing running yet) it would take both cores, twice over (the measured 142 sec/kimg first tick).
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        share = _Share([0.0, 1.0, 2.0])
        governor = cpu_share.ThreadGovernor(share=share, processes=2)
        assert governor.update() == 1  # first look, idle machine: 2 free cores // 2 processes
        share.own_rate = 1.0  # the sibling is as busy as we are: 1.0 -> nothing outside the run
        assert governor.update() is None and torch.get_num_threads() == 1
        assert governor.update() is None  # 2.0 - 1.0: one core to another program, 1 // 2 -> still 1
        torch.set_num_threads(1)
        share = _Share([0.0, 16.0], cores=16)
        governor = cpu_share.ThreadGovernor(share=share, processes=4)
        assert governor.update() == 4  # 16 free cores // 4 processes
        share.own_rate = 4.0  # three siblings at 4 cores each, so 16 - 12 = 4 cores of another program
        assert governor.update() == 3  # (16 - 4) // 4
    finally:
        torch.set_num_threads(before)


def test_local_world_size(monkeypatch):
    from stages.common.distributed import DistInfo, local_world_size

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert local_world_size(DistInfo(0, 1, 0, "cpu")) == 1  # alone
    assert local_world_size(DistInfo(3, 4, 1, "cpu")) == 2  # 2 nodes x 2
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert local_world_size(DistInfo(1, 2, 1, "cpu")) == 2


def test_parse_threads():
    assert cpu_share.parse_threads(None) is None
    assert cpu_share.parse_threads("AUTO") == "auto"
    assert cpu_share.parse_threads("3") == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="auto"):
            cpu_share.parse_threads(bad)


class _Share:
    def __init__(self, values, cores=2):
        self.values, self.cores, self.own_rate = iter(values), list(range(cores)), 0.0

    def others(self):
        return next(self.values)


def test_governor_follows_the_free_cores():
    before = torch.get_num_threads()
    configured = []
    try:
        torch.set_num_threads(2)
        governor = cpu_share.ThreadGovernor(lambda: configured.append(torch.get_num_threads()),
                                            share=_Share([1.0, 1.0, 0.0, None]))
        assert governor.update() == 1 and torch.get_num_threads() == 1
        assert governor.update() is None  # unchanged
        assert governor.update() == 2 and torch.get_num_threads() == 2
        assert governor.update() is None  # no measurement: keep
        assert configured == [1, 2]  # flush-to-zero re-applied after each change
    finally:
        torch.set_num_threads(before)


def test_apply_threads_from_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(cpu_share.THREADS_ENV, "1")
        assert cpu_share.apply_threads(None) is None and torch.get_num_threads() == 1
        monkeypatch.setenv(cpu_share.THREADS_ENV, "lots")
        with pytest.raises(ThreeDGPError, match="THREEDGP_THREADS: must be"):
            cpu_share.apply_threads(None)
        monkeypatch.setattr(cpu_share, "FIRST_LOOK_S", 0.01)
        assert isinstance(cpu_share.apply_threads("auto"), cpu_share.ThreadGovernor)
    finally:
        torch.set_num_threads(before)


def test_train_threads_option_is_a_checked_runtime_key():
    from stages.train.config import ConfigValueError, RunConfig, get_train_preset
    from stages.train.flags import option_for
    from stages.train.resume import RUNTIME_KEYS

    assert "run.threads" in RUNTIME_KEYS and option_for("run.threads") == "--threads"
    assert get_train_preset("demo").run.threads == "auto" and get_train_preset("tiny").run.threads is None
    RunConfig(threads="4")
    with pytest.raises(ConfigValueError, match="threads"):
        RunConfig(threads="many")
