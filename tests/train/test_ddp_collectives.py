"""A two-process CPU run (gloo) exercises every collective of training and of its metrics through the checked
wrappers, computes the metrics on both ranks, and prints its tick lines on the console (issue 18 acceptance 1)."""
from __future__ import annotations

from collections import Counter

import pytest

from stages.common.distributed import RECORD_ENV, served_devices
from stages.common.stats import read_jsonl
from stages.train import launch
from train_helpers import tiny_cfg


@pytest.mark.slow
def test_two_ranks_share_the_metrics_and_every_collective_is_served(toy_dataset, tmp_path, monkeypatch, capfd):
    records = tmp_path / "collectives"
    records.mkdir()
    monkeypatch.setenv(RECORD_ENV, str(records))
    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_cfg(toy_dataset, 0.016, "run.gpus=2", "run.batch=8", "run.batch_gpu=4", "run.metrics=fid64,nfs8",
                   "run.metrics_kimg=1")
    launch(cfg, run, None)
    err = capfd.readouterr().err
    assert err.count("tick ") >= 2 and "kimg 0.016" in err  # rank 0's status lines reach the console
    lines = read_jsonl(run / "metrics.jsonl")
    assert [line["kimg"] for line in lines] == [0.0, 0.016]  # at the start and at the end
    assert all(line["processes"] == 2 and line["fid64"] > 0 and 1 <= line["nfs8"] <= 64 for line in lines)
    per_rank = {}
    for rank in (0, 1):
        ops = []
        for row in (records / f"rank{rank}.txt").read_text().splitlines():
            backend, op, kinds = row.split(" ")
            served = served_devices(backend)
            assert kinds == "-" or all(k in served for k in kinds.split(",")), row
            ops.append(op)
        per_rank[rank] = Counter(ops)
    assert per_rank[0] == per_rank[1]  # the ranks met in the same collectives
    for op in ("all_reduce", "all_gather", "all_gather_object", "broadcast_object", "barrier"):
        assert per_rank[1][op] > 0, op  # rank 1 took part in training and in the metrics (all_gather: features)
