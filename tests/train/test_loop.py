"""The training loop on the tiny preset: exact resume, divergence rollback, ablations (issue 5 acceptance 2)."""
from __future__ import annotations

import json

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.errors import TrainingDiverged
from stages.common.stats import read_jsonl
from stages.train import phases, run_loop
from stages.train.overrides import Override, parse_set
from stages.train.resume import resolve_new_config

torch.set_num_threads(1)

from train_helpers import FAST, tiny_cfg


def _tensors(path):
    state = ckpt.load_checkpoint(path, kind="training-state")
    return {f"{net}.{k}": v for net in ("G", "D", "G_ema") for k, v in state[net].items()}, state


def test_resume_is_bit_identical(toy_dataset, tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    res = run_loop(tiny_cfg(toy_dataset, 0.032), straight)
    assert res.cur_nimg == 32 and res.rollbacks == 0
    halves = tmp_path / "halves"
    halves.mkdir()
    run_loop(tiny_cfg(toy_dataset, 0.016), halves)
    run_loop(tiny_cfg(toy_dataset, 0.032), halves, resume_path=ckpt.latest_training_state(halves))
    a, sa = _tensors(ckpt.latest_training_state(straight))
    b, sb = _tensors(ckpt.latest_training_state(halves))
    assert sa["counters"] == sb["counters"] and sa["counters"]["cur_nimg"] == 32
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert sa["opt_G"]["state"][0]["exp_avg_sq"].equal(sb["opt_G"]["state"][0]["exp_avg_sq"])
    # Every artefact of a run is there.
    names = {p.name for p in straight.iterdir()}
    assert {"log.txt", "stats.jsonl", "reals.png", "fakes_init.png"} <= names
    assert any(n.startswith("snapshot-") for n in names) and any(n.startswith("fakes0") for n in names)
    stats = read_jsonl(straight / "stats.jsonl")
    assert len(stats) == 4 and {"Loss/G/adv", "Loss/D/real", "Loss/D/fake", "Loss/D/r1", "Loss/D/kd",
                                "Loss/G/force_mean", "Camera/yaw/std", "Schedule/patch_beta"} <= set(stats[0])


def _poison_g_loss(monkeypatch, bad_calls: set[int], value: float = float("nan")):
    calls = {"n": 0}
    real_g_loss = phases.g_loss

    def poisoned(ctx, n):
        calls["n"] += 1
        loss = real_g_loss(ctx, n)
        return loss * value if calls["n"] in bad_calls else loss

    monkeypatch.setattr(phases, "g_loss", poisoned)


def test_an_occasional_nonfinite_loss_is_counted_and_does_not_rewind(toy_dataset, tmp_path, monkeypatch):
    # Issue 12 §3: as the official code, NaN gradients become 0 (+-inf -> +-1e5) and the run goes on.
    _poison_g_loss(monkeypatch, {5})  # one NaN in the 3rd tick (two iterations per tick)
    res = run_loop(tiny_cfg(toy_dataset, 0.032), tmp_path)
    assert res.rollbacks == 0 and res.cur_nimg == 32
    stats = read_jsonl(tmp_path / "stats.jsonl")
    assert not [r for r in stats if "event" in r]
    assert [r["Health/nonfinite_loss_steps"] for r in stats] == [0, 0, 1, 0]
    assert stats[2]["Health/nonfinite_grads/Gall"] > 0 and stats[1]["Health/nonfinite_grads/Gall"] == 0
    assert stats[2]["Health/nonfinite_grads/Dmain"] == 0
    assert isinstance(stats[2]["Loss/G/adv"], float)  # the tick mean leaves the non-finite observation out
    state = ckpt.load_checkpoint(ckpt.latest_training_state(tmp_path), kind="training-state")
    assert all(torch.isfinite(v).all() for net in ("G", "D", "G_ema") for v in state[net].values()
               if v.is_floating_point())


def test_a_persistent_nonfinite_loss_rolls_back_and_continues(toy_dataset, tmp_path, monkeypatch):
    _poison_g_loss(monkeypatch, {4, 5})  # two consecutive iterations across a tick boundary (2 per tick)
    res = run_loop(tiny_cfg(toy_dataset, 0.032, "run.nonfinite_loss_steps=2"), tmp_path)
    assert res.rollbacks == 1 and res.cur_nimg == 32
    events = [r for r in read_jsonl(tmp_path / "stats.jsonl") if "event" in r]
    assert len(events) == 1 and "non-finite in 2 consecutive iterations" in events[0]["event"]
    log = (tmp_path / "log.txt").read_text()
    # The tick ending at 0.016 ended inside the streak, so it wrote no state: the rollback goes one further back.
    assert "divergence at kimg" in log and "rolled back to training-state-000000.008.pt" in log
    state = ckpt.load_checkpoint(ckpt.latest_training_state(tmp_path), kind="training-state")
    assert state["counters"]["rollbacks"] == 1 and state["counters"]["seed_stream"] == 1
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_gives_up_after_max_rollbacks(toy_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(phases, "g_loss", lambda ctx, n: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingDiverged, match="diverged 2 times .* --max-rollbacks 1"):
        run_loop(tiny_cfg(toy_dataset, 0.032, "run.max_rollbacks=1", "run.nonfinite_loss_steps=2"), tmp_path)


def test_plain_epigraf_without_depth(toy_dataset_nodepth, tmp_path):
    overrides = [Override("--no-depth", "model.img_channels", 3),
                 Override("--no-depth", "model.depth_adaptor.enabled", False)]
    cfg = resolve_new_config("tiny", [Override("--data", "data.path", toy_dataset_nodepth),
                                      Override("--kimg", "run.kimg", 0.008)] + overrides
                             + [parse_set(s) for s in FAST])
    assert cfg.model.img_channels == 3 and cfg.model.discriminator.kd_dim == 0 and cfg.loss.kd_weight == 0
    res = run_loop(cfg, tmp_path)
    assert res.cur_nimg == 8
    stats = read_jsonl(tmp_path / "stats.jsonl")[-1]
    assert "Loss/D/kd" not in stats and stats["Loss/G/adv"] > 0
    snap = ckpt.load_checkpoint(res.last_snapshot, kind="snapshot")
    assert snap["model_config"]["img_channels"] == 3
    assert json.loads((tmp_path / "config.json").read_text())["model"]["img_channels"] == 3 if \
        (tmp_path / "config.json").exists() else True
