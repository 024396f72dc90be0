"""StatsWriter and TensorBoard (issue 18 "Watching a long run", acceptance 7): events read back with TensorBoard's
own reader, one warning when TensorBoard is missing, and a resumed run's events replace an abandoned continuation."""
from __future__ import annotations

import logging
import sys

import pytest

from stages.common.stats import StatsWriter, read_jsonl

pytest.importorskip("tensorboard")  # a project dependency (pyproject.toml); this guards a hand-made environment


def _scalars(tb_dir, tag: str) -> list[tuple[int, float]]:
    """(step, value) of ``tag`` as TensorBoard shows it (its event reader, orphaned data purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_events_read_back_with_tensorboard(tmp_path):
    w = StatsWriter(tmp_path)
    w.write(0.008, 1, {"Loss/G/adv": 1.5, "Loss/D/r1": float("nan")})
    w.write(0.016, 2, {"Loss/G/adv": 0.25, "Loss/D/r1": 2.0})
    w.close()
    assert _scalars(tmp_path / "tensorboard", "Loss/G/adv") == [(8, 1.5), (16, 0.25)]
    assert _scalars(tmp_path / "tensorboard", "Loss/D/r1") == [(16, 2.0)]  # NaN stays in stats.jsonl only
    assert [r["kimg"] for r in read_jsonl(tmp_path / "stats.jsonl")] == [0.008, 0.016]


def test_resumed_writer_hides_the_abandoned_continuation(tmp_path):
    w = StatsWriter(tmp_path)
    for tick, kimg in enumerate((0.008, 0.016, 0.024), start=1):  # 0.016 and 0.024: a continuation later abandoned
        w.write(kimg, tick, {"Loss/G/adv": float(tick)})
    w.close()
    w = StatsWriter(tmp_path)  # resumed from the state at kimg 0.008
    w.write(0.016, 2, {"Loss/G/adv": 20.0})
    w.close()
    assert _scalars(tmp_path / "tensorboard", "Loss/G/adv") == [(8, 1.0), (16, 20.0)]


def test_missing_tensorboard_is_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` raises ImportError
    monkeypatch.setattr(StatsWriter, "_tb_warned", False)
    with caplog.at_level(logging.WARNING, logger="stages"):
        for _ in range(2):
            w = StatsWriter(tmp_path)
            w.write(0.008, 1, {"Loss/G/adv": 1.0})
            w.close()
    warnings = [r for r in caplog.records if "TensorBoard events are off" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert not (tmp_path / "tensorboard").exists()
    assert len(read_jsonl(tmp_path / "stats.jsonl")) == 2  # stats.jsonl goes on


def test_disabled_writer_writes_nothing(tmp_path):
    w = StatsWriter(tmp_path, enabled=False)
    w.write(0.008, 1, {"Loss/G/adv": 1.0})
    w.close()
    assert list(tmp_path.iterdir()) == []
