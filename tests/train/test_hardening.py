"""`3dgp train` hardening (issue 13 §1 last bullet, §2, §4, §5): every rejected start is one line, exit 1, and
leaves nothing behind; a run directory is trained by one process at a time; --resume never picks a run that never
started."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.rundir import LOCK_NAME, RunLock
from stages.train.config import to_dict
from stages.train.state import Counters, build_networks, build_optimizers, save_state
from tests.helpers.toy_data import make_toy_dataset
from train_helpers import tiny_cfg

REPO = Path(__file__).resolve().parents[2]


def one_line_error(code, err, *needles):
    """Exit 1 and exactly one stderr line, ``Error: ...`` containing every needle; returns the line."""
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (code, err)
    for needle in needles:
        assert needle in lines[0], err
    assert "Traceback" not in err and "weights_only" not in err
    return lines[0]


def listing(path: Path) -> dict:
    """Every file under ``path`` with its size and mtime (to prove nothing changed)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def run_template(tmp_path_factory, toy_dataset):
    """A run directory whose training state is at its end (kimg 0.004): resuming it has nothing left to train."""
    run_dir = tmp_path_factory.mktemp("template") / "00000-tiny-toy"
    run_dir.mkdir()
    cfg = tiny_cfg(toy_dataset, 0.004)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg)))
    torch.manual_seed(0)
    nets = build_networks(cfg, torch.device("cpu"))
    save_state(run_dir, cfg, nets, build_optimizers(cfg, nets.G, nets.D), Counters(cur_nimg=4))
    return run_dir


@pytest.fixture
def a_run(run_template, tmp_path):
    outdir = tmp_path / "runs"
    outdir.mkdir()
    return Path(shutil.copytree(run_template, outdir / run_template.name))


# --- §1: a meta record that disagrees with its items ------------------------------------------------------------

@pytest.mark.parametrize("change, needle", [
    ({"resolution": 64}, "its image is 32x32 but the resolution is 64"),
    ({"num_items": "16"}, "num_items must be an integer >= 0, got '16'"),
    ({"num_items": 40}, "item 20 disagrees with the meta record: it is missing although num_items is 40"),
    ({"num_items": 8, "label_counts": [4, 4]}, "item 8 disagrees with the meta record: it exists"),
    ({"embedder": {"name": "x", "dim": 16}}, "its embedding has 8 values but the embedder dim is 16"),
])
def test_meta_record_disagreeing_with_items_is_refused(tmp_path, run_cli, change, needle):
    import lmdb

    from stages.data.format import META_KEY

    data = make_toy_dataset(tmp_path / "toy")
    env = lmdb.open(str(data))
    with env.begin(write=True) as txn:
        txn.put(META_KEY, json.dumps({**json.loads(txn.get(META_KEY)), **change}).encode())
    env.close()
    out = tmp_path / "runs"
    code, _, err = run_cli("train", "--data", data, "--preset", "tiny", "--outdir", out)
    one_line_error(code, err, str(data), needle)
    assert not out.exists()


# --- §2: one trainer per run directory --------------------------------------------------------------------------

def _hold_lock(run_dir: Path) -> subprocess.Popen:
    code = ("import sys, time\nfrom stages.common.rundir import RunLock\nRunLock.acquire(sys.argv[1])\n"
            "print('locked', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_run_is_refused_and_a_dead_holder_does_not_block(a_run, run_cli):
    holder = _hold_lock(a_run)
    try:
        before = listing(a_run)
        code, _, err = run_cli("train", "--resume", a_run)
        one_line_error(code, err, str(a_run), f"another `3dgp train` (pid {holder.pid} on ", "is training this run")
        code, _, err = run_cli("train", "--resume", "--outdir", a_run.parent)  # found as the latest run: the same
        one_line_error(code, err, f"pid {holder.pid}")
        assert listing(a_run) == before  # nothing written, not even config.json or log.txt
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the kernel drops the flock with the process
        holder.wait()
    assert (a_run / LOCK_NAME).read_text().startswith(f"pid {holder.pid} ")  # the file stays, but locks nothing
    code, _, err = run_cli("train", "--resume", a_run)
    assert code == 0, err
    assert (a_run / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")
    RunLock.acquire(a_run).release()  # released at the end of the run


# --- §2: rejected starts leave nothing; --resume skips runs that never started ------------------------------------

def test_rejected_starts_leave_no_run_directory(toy_dataset, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "runs"
    for args in (["--batch", "7", "--gpus", "2"], ["--set", "run.tick_kimg=0"], ["--device", "cuda:99"],
                 ["--metrics", "fidd"], ["--no-depth-adaptor", "--depth-adaptor-p", "0.2"]):
        code, _, err = run_cli("train", "--data", toy_dataset, "--preset", "tiny", "--outdir", out, *args)
        one_line_error(code, err)
        assert not out.exists(), args
    # A start that fails after its run directory was made (here: while building the trainer) removes it again.
    from stages.common.errors import BadFileError
    from stages.train import loop

    def boom(self, *args, **kwargs):
        raise BadFileError("somewhere", "simulated failure before the first training state")

    monkeypatch.setattr(loop.Trainer, "__init__", boom)
    code, _, err = run_cli("train", "--data", toy_dataset, "--preset", "tiny", "--outdir", out, "--kimg", "0.004")
    one_line_error(code, err, "simulated failure")
    assert out.is_dir() and not list(out.iterdir())


def test_resume_skips_run_directories_without_a_training_state(a_run, run_cli):
    from stages.train.resume import resolve_resume

    junk = a_run.parent / "00001-tiny-toy"  # e.g. killed before its first state (or left by an older version)
    junk.mkdir()
    shutil.copy(a_run / "config.json", junk / "config.json")
    plan = resolve_resume(str(a_run.parent), None, None, [], False)
    assert plan.run_dir == a_run and plan.state_path == ckpt.latest_training_state(a_run)
    code, _, err = run_cli("train", "--resume", "--outdir", a_run.parent)
    assert code == 0, err
    assert "skipping 00001-tiny-toy: no training state" in err
    assert sorted(p.name for p in junk.iterdir()) == ["config.json"]
    # Named explicitly, a run that never saved a state starts from its saved config.json, in place.
    plan = resolve_resume(str(a_run.parent), str(junk), None, [], False)
    assert plan.run_dir == junk and plan.state_path is None and plan.cfg.run.kimg == 0.004


# --- §4/§5: config values, checked where they are defined --------------------------------------------------------

def test_saved_config_is_validated_on_resume(a_run, run_cli):
    junk = a_run.parent / "00001-tiny-toy"
    junk.mkdir()
    cfg = json.loads((a_run / "config.json").read_text())
    cfg["run"]["kimg"] = -1
    (junk / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli("train", "--resume", junk)
    one_line_error(code, err, str(junk / "config.json"), "run.kimg: must be in (0, 1e+06], got -1")
    assert sorted(p.name for p in junk.iterdir()) == ["config.json"]


# --- §5: one line, naming the cause and the fix -------------------------------------------------------------------

def _corrupt(state: Path, how: str) -> None:
    data = state.read_bytes()
    if how == "truncated":
        state.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        state.write_bytes(b"")
    elif how == "garbage":
        state.write_bytes(os.urandom(4096))
    elif how == "code":
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        torch.save({"format_version": 1, "kind": "training-state", "x": Evil()}, state)
    else:
        obj = torch.load(state, weights_only=True)
        if how == "missing key":
            obj["G"].pop(next(iter(obj["G"])))
        elif how == "wrong shape":
            key = next(k for k, v in obj["D"].items() if v.ndim >= 2)
            obj["D"][key] = torch.zeros(3, 3)
        elif how == "no G":
            del obj["G"]
        torch.save(obj, state)


@pytest.mark.parametrize("how, needle", [
    ("truncated", "damaged or truncated"), ("empty", "empty or truncated"), ("garbage", "damaged or not a torch"),
    ("code", "it refers to Python code (print)"), ("missing key", "G does not match the configured model: "
     "1 missing tensor(s)"), ("wrong shape", "D does not match the configured model: 1 tensor(s) of another shape"),
    ("no G", "incomplete training-state checkpoint: no G"),
])
def test_damaged_training_state_is_one_line(a_run, run_cli, how, needle):
    state = ckpt.latest_training_state(a_run)
    _corrupt(state, how)
    before = listing(a_run)
    code, _, err = run_cli("train", "--resume", a_run)
    one_line_error(code, err, str(state), needle)
    assert listing(a_run) == before


def test_resume_with_a_deleted_or_different_dataset(a_run, run_cli, tmp_path):
    cfg = json.loads((a_run / "config.json").read_text())
    gone = tmp_path / "gone"
    shutil.copytree(cfg["data"]["path"], gone)
    cfg["data"]["path"] = str(gone)
    state = ckpt.latest_training_state(a_run)
    obj = torch.load(state, weights_only=True)
    obj["config"]["data"]["path"] = str(gone)
    torch.save(obj, state)
    (a_run / "config.json").write_text(json.dumps(cfg))
    shutil.rmtree(gone)
    before = listing(a_run)
    code, _, err = run_cli("train", "--resume", a_run)
    one_line_error(code, err, f"the run's dataset {gone} no longer exists", "pass --data PATH")
    other = make_toy_dataset(tmp_path / "other", emb_dim=4)  # the run's KD head predicts 8 values
    code, _, err = run_cli("train", "--resume", a_run, "--data", other)
    one_line_error(code, err, f"--data: {other} is not the dataset the run was trained on", "add --force-override")
    code, _, err = run_cli("train", "--resume", a_run, "--data", other, "--force-override")
    one_line_error(code, err, "--data: ", "embedding dim 4 does not match the run's KD head (8)")
    assert listing(a_run) == before


def test_run_dir_without_resume_names_the_fix(a_run, run_cli):
    code, _, err = run_cli("train", a_run)
    one_line_error(code, err, f"--resume: {a_run} names a run to continue: add --resume")
    code, _, err = run_cli("train", "--preset", "tiny", "--force-override")
    one_line_error(code, err, "--force-override: only applies with --resume")


def test_dry_run_without_data_prints_the_preset(run_cli, tmp_path):
    code, out, err = run_cli("train", "--preset", "imagenet", "--dry-run", "--outdir", tmp_path / "runs")
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["preset"] == "imagenet" and cfg["data"]["path"] == "" and cfg["model"]["c_dim"] == 1000
    assert not (tmp_path / "runs").exists()
