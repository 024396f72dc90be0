"""A checkpoint is read once per use (issue 20 §6): a resume reads its training state once, ``--snapshots best``
maps the training state for its one record instead of reading every tensor, and export reads its snapshot once."""
from __future__ import annotations

from pathlib import Path

import torch

from stages.common import checkpoint as ckpt
from stages.train import TrainRequest, run
from stages.train.overrides import Override, parse_set
from train_helpers import FAST


def _count_loads(monkeypatch) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []
    real = torch.load

    def counting(f, *args, **kwargs):
        calls.append((Path(f).name, bool(kwargs.get("mmap"))))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def test_a_resume_reads_its_training_state_once(toy_dataset, tmp_path, monkeypatch):
    sets = tuple(parse_set(s) for s in FAST)
    first = run(TrainRequest(preset="tiny", outdir=str(tmp_path), overrides=sets + (
        Override("--data", "data.path", toy_dataset), Override("--kimg", "run.kimg", 0.008))))
    calls = _count_loads(monkeypatch)
    res = run(TrainRequest(outdir=str(tmp_path), resume=True, force_override=True,
                           overrides=(Override("--kimg", "run.kimg", 0.016),)))
    assert res.loop.cur_nimg == 16 and res.run_dir == first.run_dir
    assert [name for name, _ in calls if name.startswith("training-state-")] == ["training-state-000000.008.pt"]


def test_the_best_snapshot_lookup_maps_the_training_state(toy_dataset, tmp_path, monkeypatch):
    from stages.nn.snapshots import resolve_snapshots

    sets = tuple(parse_set(s) for s in FAST)
    done = run(TrainRequest(preset="tiny", outdir=str(tmp_path), overrides=sets + (
        Override("--data", "data.path", toy_dataset), Override("--kimg", "run.kimg", 0.008),
        parse_set("run.snapshot_kimg=0.008"))))
    calls = _count_loads(monkeypatch)
    (best,) = resolve_snapshots(done.run_dir, "best")
    assert best.name.startswith("snapshot-") and calls == [(ckpt.latest_training_state(done.run_dir).name, True)]


def test_export_reads_its_snapshot_once(eval_run, run_cli, tmp_path, monkeypatch):
    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    calls = _count_loads(monkeypatch)
    code, _, err = run_cli("export", snap, "--outdir", tmp_path / "x", "--seeds", "0", "--grid", "--steps", "4",
                           "--ray-end", "2.0")
    assert code == 0, err
    assert [name for name, _ in calls] == [snap.name]
