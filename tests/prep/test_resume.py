"""kill -9 during prep, then the same command again: it resumes and ends with the same items (issue 3)."""
from __future__ import annotations

import json
import signal
import time

import lmdb
import pytest

from prep_testutils import cli_subprocess, read_items
from stages.data.format import PROGRESS_KEY

NUM = 300
ARGS = ("--num", NUM, "--resolution", 16, "--seed", 7, "--embedder", "none", "--batch-size", 4)


def _items_done(partial) -> int:
    if not (partial / "data.mdb").is_file():
        return 0
    env = lmdb.open(str(partial), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            raw = txn.get(PROGRESS_KEY)
    finally:
        env.close()
    return json.loads(raw)["num_items"] if raw else 0


def _kill_midway(out, min_items: int = 24) -> int:
    """Start the prep in a subprocess and SIGKILL it once ``min_items`` items are committed."""
    partial = out.with_name(out.name + ".partial")
    proc = cli_subprocess("prep", "toy", out, *ARGS, "--workers", 0)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        done = _items_done(partial)
        if done >= min_items:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"prep ended before it could be killed (rc {proc.returncode}): {err}"
    return done


def test_kill_then_resume_matches_uninterrupted_run(tmp_path, run_cli):
    reference = tmp_path / "reference"
    code, _, err = run_cli("prep", "toy", reference, *ARGS, "--workers", 0)
    assert code == 0, err

    out = tmp_path / "toy"
    done = _kill_midway(out)
    assert 0 < done < NUM
    assert not out.exists(), "a killed prep must not leave a (half-written) dataset at OUT"
    assert out.with_name("toy.partial").is_dir()

    # a different command on the partial dataset: refused, naming the difference
    code, _, err = run_cli("prep", "toy", out, *ARGS[:2], "--resolution", 32, *ARGS[4:])
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "--resolution 16 -> 32" in err and "toy.partial" in err and "--overwrite" in err

    # the same command (other --workers is fine: not part of the content) resumes
    code, stdout, err = run_cli("prep", "toy", out, *ARGS, "--workers", 2)
    assert code == 0, err
    resumed = int(stdout.split(" resumed")[0].rsplit(", ", 1)[-1])
    assert resumed >= done  # nothing committed before the kill was redone
    assert not out.with_name("toy.partial").exists()
    assert read_items(out) == read_items(reference)  # byte-identical items, same order

    # once more: already complete, nothing to do
    code, stdout, _ = run_cli("prep", "toy", out, *ARGS, "--workers", 0)
    assert code == 0 and "already complete" in stdout


def test_existing_dataset_with_other_arguments_needs_overwrite(tmp_path, run_cli):
    out = tmp_path / "toy"
    small = ("--num", 4, "--resolution", 8, "--embedder", "none", "--workers", 0)
    assert run_cli("prep", "toy", out, *small)[0] == 0
    code, _, err = run_cli("prep", "toy", out, *small, "--seed", 1)
    assert code == 1 and "--seed 0 -> 1" in err and "--overwrite" in err
    code, _, err = run_cli("prep", "toy", out, *small, "--seed", 1, "--overwrite")
    assert code == 0, err
    from stages.data.lmdb_store import read_meta

    assert read_meta(out)["prep_args"]["seed"] == 1


@pytest.mark.parametrize("content", ["file", "folder"])
def test_output_that_is_not_a_dataset_is_left_alone(tmp_path, run_cli, content):
    out = tmp_path / "mine"
    if content == "file":
        out.write_text("precious")
    else:
        (out / "sub").mkdir(parents=True)
    code, _, err = run_cli("prep", "toy", out, "--num", 2, "--resolution", 8, "--embedder", "none", "--overwrite")
    assert code == 1 and "is not a 3dgp dataset" in err
    assert out.exists()
