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


def test_parse_threads():
    assert cpu_share.parse_threads(None) is None
    assert cpu_share.parse_threads("AUTO") == "auto"
    assert cpu_share.parse_threads("3") == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="auto"):
            cpu_share.parse_threads(bad)


class _Share:
    def __init__(self, values, cores=2):
        self.values, self.cores = iter(values), list(range(cores))

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
