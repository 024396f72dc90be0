"""Resume from the command line: config conflicts and kill -9 at any moment (issue 5 acceptance 1, 2)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stages.common import checkpoint as ckpt
from stages.train import TrainRequest, run
from stages.train.overrides import Override, parse_set
from train_helpers import FAST

FAST_ARGS = [a for s in FAST for a in ("--set", s)]


def _request(**kw):
    return TrainRequest(**kw)


def test_resume_conflicts_saved_value_wins_unless_forced(toy_dataset, tmp_path):
    sets = tuple(parse_set(s) for s in FAST)
    first = run(_request(preset="tiny", outdir=str(tmp_path), overrides=sets + (
        Override("--data", "data.path", toy_dataset), Override("--kimg", "run.kimg", 0.008))))
    run_dir = Path(first.run_dir)
    assert first.loop.cur_nimg == 8 and run_dir.name == "00000-tiny-toy"
    # Conflicting options: reported by flag name, the saved values win.
    res = run(_request(outdir=str(tmp_path), resume=True, preset="toy64", overrides=(
        Override("--batch", "run.batch", 8), Override("--kimg", "run.kimg", 0.016),
        Override("--seed", "run.seed", 0), parse_set("model.generator.feat_dim=4"))))
    assert res.run_dir == str(run_dir) and res.loop.cur_nimg == 8  # kimg 0.008 kept: nothing left to do
    assert any(m.startswith("--preset toy64 conflicts with the saved preset tiny") for m in res.conflicts)
    assert any(m.startswith("--batch 8 conflicts with the saved run.batch = 4; keeping 4") for m in res.conflicts)
    assert any("--kimg 0.016 conflicts with the saved run.kimg = 0.008" in m for m in res.conflicts)
    assert any("architecture cannot change" in m for m in res.conflicts)
    assert not any(m.startswith("--seed") for m in res.conflicts)  # same value: no conflict
    # --force-override: the new value wins and config.json records it.
    res = run(_request(outdir=str(tmp_path), resume=True, resume_from=str(run_dir), force_override=True,
                               overrides=(Override("--kimg", "run.kimg", 0.016),)))
    assert res.loop.cur_nimg == 16
    assert json.loads((run_dir / "config.json").read_text())["run"]["kimg"] == 0.016
    assert "(--force-override)" in res.conflicts[0]


def _cli(*args):
    return [sys.executable, "-m", "threedgp_cli", "train", *args]


@pytest.mark.slow
def test_kill_9_then_resume_continues(toy_dataset, tmp_path):
    env = dict(os.environ, THREEDGP_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    outdir = tmp_path / "runs"
    proc = subprocess.Popen(_cli("--data", toy_dataset, "--preset", "tiny", "--outdir", str(outdir), "--kimg",
                                 "0.2", *FAST_ARGS), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    run_dir = None
    while time.time() < deadline:  # kill as soon as two periodic states exist (mid-tick, mid-write or not)
        dirs = list(outdir.glob("0*"))
        if dirs and len(ckpt.list_training_states(dirs[0])) >= 3:
            run_dir = dirs[0]
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    assert run_dir is not None, "no training state appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.list_training_states(run_dir)[-1][0]
    assert killed_at < 0.2
    res = subprocess.run(_cli("--resume", "--outdir", str(outdir)), env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    final = ckpt.load_checkpoint(ckpt.latest_training_state(run_dir), kind="training-state")
    assert final["counters"]["cur_nimg"] == 200
    assert final["counters"]["cur_tick"] == 25  # ticks of 8 images: none lost or repeated
    assert not list(run_dir.glob("*.tmp"))
    assert "resumed at kimg" in (run_dir / "log.txt").read_text()
