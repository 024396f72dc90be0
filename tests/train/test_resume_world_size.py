"""Device and process count are runtime options (issue 18 row 13), and a resume on another number of processes
continues the same run (issue 18 "Resuming on a different number of GPUs", acceptance 3)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.errors import BadOptionError
from stages.common.stats import read_jsonl
from stages.train import TrainRequest, launch, run
from stages.train.config import to_dict
from stages.train.overrides import Override, parse_set
from stages.train.resume import resolve_resume
from stages.train.state import Counters, build_networks, build_optimizers, save_state
from train_helpers import FAST, tiny_cfg

SPLIT = ("run.batch=8", "run.batch_gpu=4", "run.keep_states=10")  # global batch 8 in micro-batches of 4


@pytest.fixture
def a_run(toy_dataset, tmp_path):
    """A run saved at kimg 0.004 (batch 8, micro-batch 4, 1 process)."""
    cfg = tiny_cfg(toy_dataset, 0.004, *SPLIT)
    run_dir = tmp_path / "runs" / "00000-tiny-toy"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg)))
    nets = build_networks(cfg, torch.device("cpu"))
    save_state(run_dir, cfg, nets, build_optimizers(cfg, nets.G, nets.D), Counters(cur_nimg=4))
    return run_dir


def test_runtime_options_change_freely_on_resume(a_run):
    overrides = [Override("--gpus", "run.gpus", 2), Override("--device", "run.device", "cpu"),
                 parse_set("data.workers=1"), Override("--minutes", "run.minutes", 5.0),
                 Override("--batch", "run.batch", 16)]
    plan = resolve_resume(str(a_run.parent), str(a_run), None, overrides, force_override=False)
    r = plan.cfg.run
    assert (r.gpus, r.device, plan.cfg.data.workers, r.minutes, r.batch, r.batch_gpu) == (2, "cpu", 1, 5.0, 8, 4)
    assert plan.conflicts == ["--batch 16 conflicts with the saved run.batch = 8; keeping 8 (pass --force-override "
                              "to use 16)"]  # the global batch is part of the run
    assert plan.config_changed
    infos = [m for level, m in plan.notes if level == logging.INFO]
    assert "--gpus 2 (the run had 1): a runtime option, changed on resume" in infos
    assert any("1 -> 2 processes: the global batch 8 stays, 4 per process" in m for m in infos)


def test_micro_batch_that_no_longer_fits_is_dropped(a_run):
    plan = resolve_resume(str(a_run.parent), str(a_run), None, [Override("--gpus", "run.gpus", 4)], False)
    assert (plan.cfg.run.gpus, plan.cfg.run.batch_gpu) == (4, None)  # 2 per process, one round
    assert any("--batch-gpu 4) does not fit 2 images per process: using 2" in m for _, m in plan.notes)


def test_process_count_must_split_the_global_batch(a_run, run_cli):
    with pytest.raises(BadOptionError, match=r"^--gpus: 3 processes cannot split the run's global batch 8"):
        resolve_resume(str(a_run.parent), str(a_run), None, [Override("--gpus", "run.gpus", 3)], False)
    code, _, err = run_cli("train", "--resume", a_run, "--gpus", "3")
    assert code == 1 and err.strip().splitlines() == [
        "Error: --gpus: 3 processes cannot split the run's global batch 8 (the batch stays on resume); use a "
        "process count that divides 8"]


LOSSES = ("Loss/G/adv", "Loss/D/real", "Loss/D/fake", "Loss/D/kd", "Loss/G/force_mean", "Loss/D/r1")


@pytest.mark.slow
def test_two_then_one_then_two_processes_match_one(toy_dataset, tmp_path):
    """2 processes -> resume on 1 -> resume on 2 == 1 process straight (same global batch and micro-batch)."""
    straight = tmp_path / "straight"
    straight.mkdir()
    launch(tiny_cfg(toy_dataset, 0.048, *SPLIT), straight, None)
    sets = tuple(parse_set(s) for s in FAST + list(SPLIT))
    res = run(TrainRequest(preset="tiny", outdir=str(tmp_path / "runs"), overrides=sets + (
        Override("--data", "data.path", toy_dataset), Override("--kimg", "run.kimg", 0.016),
        Override("--gpus", "run.gpus", 2))))
    run_dir = Path(res.run_dir)
    for gpus, kimg in ((1, 0.032), (2, 0.048)):  # --kimg extends the run (forced); --gpus needs no force
        res = run(TrainRequest(resume=True, resume_from=str(run_dir), force_override=True, overrides=(
            Override("--gpus", "run.gpus", gpus), Override("--kimg", "run.kimg", kimg))))
        assert not any(m.startswith("--gpus") for m in res.conflicts)
    log = (run_dir / "log.txt").read_text()
    assert "2 -> 1 processes: the global batch 8 stays, 8 per process" in log
    assert "1 -> 2 processes: the global batch 8 stays, 4 per process" in log
    sa, sb = read_jsonl(straight / "stats.jsonl"), read_jsonl(run_dir / "stats.jsonl")
    assert [r["kimg"] for r in sa] == [r["kimg"] for r in sb] == [0.008, 0.016, 0.024, 0.032, 0.04, 0.048]
    for ra, rb in zip(sa, sb):
        for name in LOSSES:
            if name in ra:
                assert rb[name] == pytest.approx(ra[name], rel=1e-4, abs=1e-6), (ra["kimg"], name)
    a = ckpt.load_checkpoint(ckpt.latest_training_state(straight), kind="training-state")
    b = ckpt.load_checkpoint(ckpt.latest_training_state(run_dir), kind="training-state")
    assert {k: a["counters"][k] for k in ("cur_nimg", "cur_tick", "batch_idx")} == \
        {k: b["counters"][k] for k in ("cur_nimg", "cur_tick", "batch_idx")} == \
        {"cur_nimg": 48, "cur_tick": 6, "batch_idx": 6}
    for net in ("G", "D", "G_ema"):
        for k, v in a[net].items():
            # w_avg tracks each process's own fakes (as in the official code); rank 0's is saved.
            if v.is_floating_point() and not k.endswith("w_avg"):
                torch.testing.assert_close(b[net][k], v, rtol=1e-3, atol=1e-5, msg=f"{net}.{k}")
    assert b["config"]["run"]["gpus"] == 2 and b["config"]["run"]["batch"] == 8
