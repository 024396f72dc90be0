"""Periodic metrics during training: metrics.jsonl, best-snapshot tracking, metric blow-up rollback (issue 5)."""
from __future__ import annotations

import torch

from stages.common import checkpoint as ckpt
from stages.common.stats import read_jsonl
from stages.train import metrics as train_metrics
from stages.train import run_loop
from train_helpers import tiny_cfg


def fake_detector(images: torch.Tensor) -> torch.Tensor:
    """A cheap stand-in for Inception: per-channel means and stds of the uint8 images -> [N, 6]."""
    x = images.float() / 255
    return torch.cat([x.mean(dim=[2, 3]), x.std(dim=[2, 3])], dim=1)


def test_metrics_jsonl_and_best_snapshot(toy_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(train_metrics, "load_detector", lambda device: fake_detector)
    cfg = tiny_cfg(toy_dataset, 0.024, "run.metrics=fid8,kid8,nfs4", "run.metrics_kimg=0.008")
    res = run_loop(cfg, tmp_path)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["kimg"] for r in records] == [0.0, 0.008, 0.016, 0.024]
    assert all(r["fid8"] >= 0 and 1 <= r["nfs4"] <= 64 and "kid8" in r for r in records)
    best = min(records, key=lambda r: r["fid8"])
    assert res.best["metric"] == "fid8" and res.best["value"] == best["fid8"] and res.best["kimg"] == best["kimg"]
    snap = ckpt.load_checkpoint(tmp_path / res.best["snapshot"], kind="snapshot")
    assert snap["kimg"] == best["kimg"]
    assert (tmp_path / "metric-cache").is_dir()
    assert "Metrics/fid8" in read_jsonl(tmp_path / "stats.jsonl")[0]


def test_metric_blowup_triggers_rollback(toy_dataset, tmp_path, monkeypatch):
    values = iter([12.0, 10.0, 100.0, 11.0, 9.0])  # init, then one evaluation 10x worse than the best
    monkeypatch.setattr(train_metrics.MetricRunner, "evaluate", lambda self, G: {"fid8": next(values)})
    cfg = tiny_cfg(toy_dataset, 0.024, "run.metrics=fid8", "run.metrics_kimg=0.008",
                   "run.diverge_metric_factor=3")
    res = run_loop(cfg, tmp_path)
    assert res.rollbacks == 1 and res.cur_nimg == 24
    events = [r["event"] for r in read_jsonl(tmp_path / "stats.jsonl") if "event" in r]
    assert events == ["divergence: metric fid8 = 100 is more than 3x its best 10"]
    assert res.best["value"] == 9.0
