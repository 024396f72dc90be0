"""A run records its dataset as an absolute path plus its fingerprint, and a resume checks both (issue 19 §3)."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.data import fingerprint as fp
from stages.data.fingerprint import dataset_fingerprint
from stages.data.lmdb_store import release_readonly
from stages.train import TrainRequest, run
from stages.train.config import to_dict
from stages.train.overrides import Override, parse_set
from stages.train.resume import resolve_resume
from stages.train.state import Counters, build_networks, build_optimizers, save_snapshot, save_state
from tests.helpers.toy_data import make_toy_dataset
from train_helpers import FAST, tiny_cfg


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Folder ``a`` holds the run's dataset ``ds32`` and the run (created from ``a`` with ``--data ds32``); folder
    ``b`` holds another dataset also called ``ds32``."""
    fp._WARNED.clear()
    a, b = tmp_path / "a", tmp_path / "b"
    make_toy_dataset(a / "ds32")
    make_toy_dataset(b / "ds32", num=12)
    monkeypatch.chdir(a)
    cfg = tiny_cfg("ds32", 0.004)
    run_dir = a / "runs" / "00000-tiny-ds32"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg)))
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"))
    save_state(run_dir, cfg, nets, build_optimizers(cfg, nets.G, nets.D), Counters(cur_nimg=4))
    save_snapshot(run_dir, cfg, nets.G_ema, Counters(cur_nimg=4))
    yield a, b, run_dir
    for ds in (a / "ds32", b / "ds32"):
        release_readonly(ds)


def _recorded(run_dir: Path) -> list[dict]:
    """The data section of config.json, of the training state and of the snapshot."""
    state = ckpt.load_checkpoint(ckpt.latest_training_state(run_dir), kind="training-state")
    snap = ckpt.load_checkpoint(ckpt.list_checkpoints(run_dir, ckpt.SNAPSHOT_PREFIX)[-1][1], kind="snapshot")
    return [json.loads((run_dir / "config.json").read_text())["data"], state["config"]["data"],
            snap["config"]["data"]]


def test_run_records_absolute_path_and_fingerprint(world):
    a, _, run_dir = world
    for data in _recorded(run_dir):
        assert data["path"] == str(a / "ds32")
        assert data["meta_sha256"] == dataset_fingerprint(a / "ds32")


def test_resume_from_another_folder_uses_the_runs_dataset(world, monkeypatch):
    a, b, run_dir = world
    monkeypatch.chdir(b)  # holds a different `ds32`
    plan = resolve_resume("runs", str(run_dir), None, [], False)
    assert plan.cfg.data.path == str(a / "ds32") and not plan.config_changed


def test_resume_refuses_a_changed_or_missing_dataset(world, run_cli):
    a, b, run_dir = world
    before = sorted(p.name for p in run_dir.iterdir())
    shutil.rmtree(a / "ds32")
    shutil.copytree(b / "ds32", a / "ds32")  # re-prepped in place: another dataset at the recorded path
    code, _, err = run_cli("train", "--resume", run_dir)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"the dataset at {a / 'ds32'} is not the one the run was trained on" in err
    assert "pass --data PATH to the run's dataset" in err
    shutil.rmtree(a / "ds32")
    code, _, err = run_cli("train", "--resume", run_dir)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"--data: the run's dataset {a / 'ds32'} no longer exists; pass --data PATH" in err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # a refused resume touches nothing


def test_data_on_resume_follows_a_moved_dataset(world, caplog):
    a, b, run_dir = world
    moved = a / "moved" / "ds32"
    moved.parent.mkdir()
    shutil.move(a / "ds32", moved)
    with caplog.at_level(logging.INFO, logger="stages"):  # the same dataset: no --force-override needed
        res = run(TrainRequest(resume=True, resume_from=str(run_dir),
                                       overrides=(Override("--data", "data.path", str(moved)),)))
    assert res.loop.cur_nimg == 4  # already at its end: nothing to train
    assert f"the run's dataset is {moved} (recorded: {a / 'ds32'})" in (run_dir / "log.txt").read_text()
    assert json.loads((run_dir / "config.json").read_text())["data"]["path"] == str(moved)
    release_readonly(moved)


def test_old_run_without_fingerprint_still_resumes(world, monkeypatch):
    a, _, run_dir = world
    state = ckpt.latest_training_state(run_dir)
    obj = torch.load(state, weights_only=True)
    obj["config"]["data"] = {k: v for k, v in obj["config"]["data"].items() if k != "meta_sha256"}
    obj["config"]["data"]["path"] = "ds32"  # as typed, before issue 19
    torch.save(obj, state)
    plan = resolve_resume("runs", str(run_dir), None, [], False)
    warnings = [m for level, m in plan.notes if level == logging.WARNING]
    assert any("relative path 'ds32'" in m for m in warnings) and any("no fingerprint" in m for m in warnings)
    assert plan.cfg.data.path == str(a / "ds32") and plan.config_changed  # recorded from now on
    assert plan.cfg.data.meta_sha256 == dataset_fingerprint(a / "ds32")


def test_new_run_from_a_relative_path(world, tmp_path):
    a, _, _ = world
    sets = tuple(parse_set(s) for s in FAST)
    res = run(TrainRequest(preset="tiny", outdir=str(tmp_path / "runs2"), overrides=sets + (
        Override("--data", "data.path", "ds32"), Override("--kimg", "run.kimg", 0.004))))
    config = json.loads((Path(res.run_dir) / "config.json").read_text())
    assert config["data"]["path"] == str(a / "ds32") and Path(res.run_dir).name == "00000-tiny-ds32"
