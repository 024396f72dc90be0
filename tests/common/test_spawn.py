"""``spawn``: a job whose processes all finished their work survives a crash in teardown; a crash during the work
still fails the job (torch's own rule), and the survivors are stopped. A clean job: tests/train/test_ddp_collectives.py.
"""
from __future__ import annotations

import logging

import pytest
from torch.multiprocessing.spawn import ProcessExitedException

from stages.common.distributed import spawn
from tests.helpers import spawn_workers


def _results(out_dir) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(out_dir.iterdir())}


@pytest.mark.slow
def test_a_rank_that_aborts_at_exit_after_finishing_is_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="stages"):
        spawn(spawn_workers.finish_then_abort_at_exit, 2, (str(tmp_path),))
    assert _results(tmp_path) == {"0.txt": "2", "1.txt": "2"}  # both ranks ran the collective to the end
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "process 1 failed after every process had finished" in warnings[0], warnings
    assert "SIGABRT" in warnings[0]


@pytest.mark.slow
def test_a_rank_that_aborts_while_working_fails_the_job(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="stages"), pytest.raises(ProcessExitedException) as info:
        spawn(spawn_workers.abort_while_working, 2, (str(tmp_path),))
    assert info.value.error_index == 1 and info.value.signal_name == "SIGABRT"
    assert _results(tmp_path) == {}  # rank 0 never got past the collective
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
