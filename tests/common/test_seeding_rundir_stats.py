"""Seeding from progress, numbered run dirs and named stats."""
from __future__ import annotations

import json
import math

import pytest
import torch

from stages.common.rundir import latest_run_dir, next_run_dir
from stages.common.seeding import derive_seed, seed_step
from stages.common.stats import StatsCollector, StatsWriter, read_jsonl


def test_seed_step_is_a_function_of_progress():
    seed_step(0, 0, 1024, slot=1, phase=2)
    a = torch.randn(4)
    seed_step(0, 0, 1024, slot=1, phase=2)
    assert torch.equal(a, torch.randn(4))
    assert len({derive_seed(0, 0, 1024, s, 2) for s in range(8)}) == 8
    assert derive_seed(0, 1, 1024, 0, 2) != derive_seed(0, 0, 1024, 0, 2)  # a new stream after a rollback
    assert derive_seed(5, 0, 0) == derive_seed(5, 0, 0) < 2**63


def test_run_dirs_are_numbered(tmp_path):
    assert latest_run_dir(tmp_path) is None
    a = next_run_dir(tmp_path, "tiny-toy")
    b = next_run_dir(tmp_path, "tiny-toy")
    assert (a.name, b.name) == ("00000-tiny-toy", "00001-tiny-toy")
    (a / "config.json").write_text("{}")
    assert latest_run_dir(tmp_path) == a  # b has no config.json yet
    (b / "config.json").write_text("{}")
    assert latest_run_dir(tmp_path) == b


def test_stats_weighted_means_skip_non_finite_and_fold_long_ticks(monkeypatch):
    monkeypatch.setattr(StatsCollector, "FOLD_EVERY", 4)  # fold mid-tick too
    s = StatsCollector()
    values = [1.0, float("nan"), 2.0, float("inf"), 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    weights = [1.0, 1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0, 1.0]
    for v, w in zip(values, weights):
        s.report("x", torch.tensor(v), weight=w)
    s.report("x", 10.0)  # python numbers join the same mean
    s.report("y", torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=torch.float64))  # averaged over its elements
    s.report("z", torch.tensor(float("nan")))
    pairs = [(v, w) for v, w in zip(values, weights) if v == v and abs(v) != float("inf")] + [(10.0, 1.0)]
    out = s.reduce()
    assert out["x"] == pytest.approx(sum(v * w for v, w in pairs) / sum(w for _, w in pairs), rel=1e-6)
    assert out["y"] == pytest.approx(3.0) and math.isnan(out["z"])
    assert s.reduce() == {}


def test_stats_mean_and_jsonl(tmp_path):
    s = StatsCollector()
    s.report("Loss/G/adv", torch.tensor([1.0, 3.0]))
    s.report("Loss/G/adv", 4.0)
    s.report("Loss/D/r1", float("nan"))
    out = s.reduce()
    assert out["Loss/G/adv"] == 3.0 and s.reduce() == {}
    w = StatsWriter(tmp_path, tensorboard=False)
    w.write(1.5, 3, out, event="divergence: test")
    rec = read_jsonl(tmp_path / "stats.jsonl")[0]
    assert rec["kimg"] == 1.5 and rec["event"] == "divergence: test" and rec["Loss/D/r1"] == "nan"
    json.dumps(rec)
