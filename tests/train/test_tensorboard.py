"""A training run writes TensorBoard events by default; they read back with TensorBoard's own reader (issue 18
acceptance 7)."""
from __future__ import annotations

import pytest

from stages.common.stats import read_jsonl
from stages.train import launch
from train_helpers import tiny_cfg


def test_training_writes_tensorboard_events(toy_dataset, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    launch(tiny_cfg(toy_dataset, 0.016), tmp_path, None)  # 2 ticks of 2 iterations at batch 4
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"Loss/G/adv", "Loss/D/real", "Loss/D/fake", "Schedule/blur_sigma", "Timing/sec_per_kimg"} <= tags
    rows = read_jsonl(tmp_path / "stats.jsonl")
    for tag in ("Loss/G/adv", "Loss/D/real"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [8, 16]  # the step is the number of images shown
        for event, row in zip(events, rows):
            assert event.value == pytest.approx(row[tag], rel=1e-6)  # float32 in the event file
