"""Issue 19 §1: a prep whose MAIN process is killed (kill -9, SIGTERM) leaves no decode worker behind and no lock
held, so the same command resumes at once; also when the killed run was itself a resumed one."""
from __future__ import annotations

import os
import signal
import time

import pytest

from prep_testutils import cli_subprocess
from test_resume import _items_done

NUM = 400
ARGS = ("--num", NUM, "--resolution", 16, "--seed", 3, "--embedder", "none", "--batch-size", 4, "--workers", 2)


def _children(pid: int) -> set[int]:
    """The live (non-zombie) processes whose parent is ``pid``."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _start_and_kill(out, sig: int, min_items: int) -> tuple[int, set[int]]:
    """Start the prep, wait for its workers and ``min_items`` committed items past the start, kill the parent with
    ``sig`` and check that its workers die within seconds; returns the items committed when it was killed."""
    partial = out.with_name(out.name + ".partial")
    before = _items_done(partial)
    proc = cli_subprocess("prep", "toy", out, *ARGS, start_new_session=True)
    deadline, workers, done = time.monotonic() + 60, set(), before
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            done = _items_done(partial)
            if len(workers) >= 2 and done >= before + min_items:
                os.kill(proc.pid, sig)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
        assert len(workers) == 2
        _assert_no_survivors(workers)  # before reading the pipes: a surviving worker holds them open
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -sig, f"prep ended before it could be killed (rc {proc.returncode}): {err}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _alive(workers):  # never leave them running for the rest of the suite
            os.kill(pid, signal.SIGKILL)
    return done


def _assert_no_survivors(workers: set[int]) -> None:
    deadline = time.monotonic() + 5
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _alive(workers)
    assert not survivors, f"decode workers {sorted(survivors)} outlived their killed parent"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_parent_leaves_no_worker_and_the_rerun_resumes(tmp_path, run_cli, sig):
    out = tmp_path / "toy"
    done = _start_and_kill(out, sig, min_items=8)
    assert 0 < done < NUM and not out.exists()
    # the killed run again (not refused by a lock a worker kept), killed once more while resuming
    done_again = _start_and_kill(out, sig, min_items=8)
    assert done_again > done
    # and the same command completes, resuming where the last one stopped; nothing else is left beside OUT
    code, stdout, err = run_cli("prep", "toy", out, *ARGS)
    assert code == 0, err
    assert int(stdout.split(" resumed")[0].rsplit(", ", 1)[-1]) >= done_again
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["toy"]
