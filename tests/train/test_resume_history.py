"""Resuming from an older training state continues one history (issue 19 §7): stats.jsonl stays monotonic in kimg,
and what the abandoned continuation wrote is moved aside, not mixed in or picked up later."""
from __future__ import annotations

import pytest

from stages.common import checkpoint as ckpt
from stages.common.stats import read_jsonl
from stages.train import TrainRequest, run
from stages.train.overrides import Override, parse_set
from train_helpers import FAST

LOSSES = ("Loss/G/adv", "Loss/D/real", "Loss/D/fake")


def test_resume_from_an_older_state_rewrites_history(toy_dataset, tmp_path):
    sets = tuple(parse_set(s) for s in FAST + ["run.keep_states=10"])
    first = run(TrainRequest(preset="tiny", outdir=str(tmp_path), overrides=sets + (
        Override("--data", "data.path", toy_dataset), Override("--kimg", "run.kimg", 0.032))))
    run_dir = tmp_path / "00000-tiny-toy"
    old_rows = read_jsonl(run_dir / "stats.jsonl")
    assert [r["kimg"] for r in old_rows] == [0.008, 0.016, 0.024, 0.032] and first.loop.cur_nimg == 32
    older = ckpt.state_path(run_dir, 16)
    run(TrainRequest(resume=True, resume_from=str(older)))
    rows = read_jsonl(run_dir / "stats.jsonl")
    assert [r["kimg"] for r in rows] == [0.008, 0.016, 0.024, 0.032]  # no duplicated ticks
    for old, new in zip(old_rows, rows):  # resume is exact: the same curve again
        for name in LOSSES:
            assert new[name] == pytest.approx(old[name], rel=1e-5, abs=1e-7), name
    aside = run_dir / "discarded-after-000000.016"
    assert sorted(p.name for p in aside.iterdir()) == [  # the final snapshot and grid of the first run too
        "fakes000000.032.png", "snapshot-000000.032.pt", "stats.jsonl", "training-state-000000.024.pt",
        "training-state-000000.032.pt"]
    assert [r["kimg"] for r in read_jsonl(aside / "stats.jsonl")] == [0.008, 0.016, 0.024, 0.032]  # the original
    assert [kimg for kimg, _ in ckpt.list_training_states(run_dir)] == [0.0, 0.008, 0.016, 0.024, 0.032]
    log = (run_dir / "log.txt").read_text()
    assert "resuming at kimg 0.016: moved what a later continuation wrote (4 later checkpoint/image file(s), " \
           "2 stats.jsonl record(s)) to discarded-after-000000.016/" in log
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = tb.EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("Loss/G/adv")] == [8, 16, 24, 32]  # the abandoned events are purged
