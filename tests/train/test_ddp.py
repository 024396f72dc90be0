"""Two CPU processes (gloo) give the same losses and weights as one process with the same global batch."""
from __future__ import annotations

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.stats import read_jsonl
from stages.train import launch
from train_helpers import tiny_cfg


@pytest.mark.slow
def test_two_processes_match_one(toy_dataset, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    # 1 process x 2 accumulation rounds of 4 == 2 processes x 1 round of 4 (global batch 8 either way).
    launch(tiny_cfg(toy_dataset, 0.016, "run.batch=8", "run.batch_gpu=4", "run.tick_kimg=0.008"), one, None)
    launch(tiny_cfg(toy_dataset, 0.016, "run.batch=8", "run.batch_gpu=4", "run.tick_kimg=0.008", "run.gpus=2"), two,
           None)
    sa, sb = read_jsonl(one / "stats.jsonl"), read_jsonl(two / "stats.jsonl")
    assert len(sa) == len(sb) == 2
    for ra, rb in zip(sa, sb):
        for name in ("Loss/G/adv", "Loss/D/real", "Loss/D/fake", "Loss/D/kd", "Loss/G/force_mean", "Loss/D/r1"):
            if name in ra:
                assert rb[name] == pytest.approx(ra[name], rel=1e-4, abs=1e-6), name
    a = ckpt.load_checkpoint(ckpt.latest_training_state(one), kind="training-state")
    b = ckpt.load_checkpoint(ckpt.latest_training_state(two), kind="training-state")
    assert a["counters"]["cur_nimg"] == b["counters"]["cur_nimg"] == 16
    for net in ("G", "D", "G_ema"):
        for k, v in a[net].items():
            # w_avg tracks each process's own fakes (as in the official code); rank 0's is saved.
            if v.is_floating_point() and not k.endswith("w_avg"):
                torch.testing.assert_close(b[net][k], v, rtol=1e-3, atol=1e-5, msg=f"{net}.{k}")
    assert not (two / "log.txt").read_text().count("rank 1")  # only rank 0 writes
