"""Issue 13 §2: a decode worker killed mid-prep (as the out-of-memory killer would) fails the prep with one line
instead of hanging; the committed items stay and the same command completes the dataset."""
from __future__ import annotations

import os
import signal

import pytest

from prep_testutils import read_items

ARGS = ("--num", 24, "--resolution", 8, "--embedder", "none", "--batch-size", 4, "--workers", 2)


@pytest.fixture
def hang_guard():
    """Fail the test instead of hanging the suite (the bug this guards against is a hang)."""
    def on_alarm(*_):
        raise TimeoutError("prep hung after a worker died")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_killed_worker_fails_fast_and_a_rerun_completes(tmp_path, run_cli, monkeypatch, hang_guard):
    import stages.prep.pipeline as pipeline

    pools, batches = [], []
    real_make_pool, real_records = pipeline.make_pool, pipeline._batch_records

    def capture_pool(workers):
        pools.append(real_make_pool(workers))
        return pools[-1]

    def kill_a_worker_after_two_batches(*args, **kwargs):
        batches.append(1)
        if len(batches) == 3:
            victim = next(iter(pools[0].processes))
            os.kill(victim, signal.SIGKILL)
            try:
                os.waitid(os.P_PID, victim, os.WEXITED | os.WNOWAIT)  # dead before the next wait on the pool
            except ChildProcessError:
                pass  # the pool's manager thread saw it die and reaped it already
        return real_records(*args, **kwargs)

    monkeypatch.setattr(pipeline, "make_pool", capture_pool)
    monkeypatch.setattr(pipeline, "_batch_records", kill_a_worker_after_two_batches)
    out = tmp_path / "toy"
    code, _, err = run_cli("prep", "toy", out, *ARGS)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--workers: a decode worker process was killed by signal 9 (SIGKILL" in err and "run the same command" in err
    assert not out.exists() and (tmp_path / "toy.partial").is_dir()  # the committed batches are kept
    assert all(p.exitcode is not None for p in pools[0].processes.values())  # no worker left running

    monkeypatch.setattr(pipeline, "_batch_records", real_records)
    code, stdout, err = run_cli("prep", "toy", out, *ARGS)
    assert code == 0, err
    assert " resumed" in stdout
    assert run_cli("prep", "toy", tmp_path / "fresh", *ARGS[:-1], 0)[0] == 0
    assert read_items(out) == read_items(tmp_path / "fresh")
