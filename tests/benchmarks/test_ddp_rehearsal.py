"""The GPU check's DDP rehearsal runs end to end on a CPU (issue 18 acceptance 5): torchrun with 2 processes, a
resume with 1, eval with 2 and 1 process(es); every check it makes passes, so a GPU session spends its minutes on
what only a GPU can show."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_rehearsal_passes_on_a_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/ddp_rehearsal.py", str(tmp_path / "reh"), "--device", "cpu",
                           "--preset", "tiny", "--resolution", "32", "--kimg", "0.032", "--batch", "8"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "reh" / "rehearsal.json").read_text())
    assert proc.returncode == 0, (proc.stdout[-2000:], report["steps"])
    assert all(report["checks"].values()) and len(report["checks"]) == 7
    train = report["collectives"]["train"]
    assert set(train) == {"rank0", "rank1"} and {"all_reduce", "all_gather", "broadcast_object"} <= set(train["rank1"])


def _rehearsal_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_rehearsal", ROOT / "benchmarks" / "ddp_rehearsal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_step_out_of_time_leaves_its_stacks_and_stops_every_process(tmp_path, monkeypatch):
    """A stuck step (here: a parent waiting on a sleeping child, as torchrun waits on its ranks) is stopped at its
    limit with exit 124; the stacks file names both processes and faulthandler prints the Python stack in the log."""
    reh = _rehearsal_module()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no py-spy: the faulthandler path
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time\\ndef stuck_here():\\n time.sleep(60)\\n"
              "stuck_here()'])\n"
              "print('started', child.pid, flush=True)\n"
              "child.wait()\n")
    log: dict = {"steps": {}}
    rc = reh._run("stuck", [sys.executable, "-c", script], tmp_path, dict(os.environ), log, limit=3.0)
    assert rc == 124
    step = log["steps"]["stuck"]
    assert step["timed_out"] is True and step["limit"] == 3.0 and 3.0 <= step["seconds"] < 30
    child_pid = int((tmp_path / "stuck.log").read_text().split("started ")[1].split()[0])
    stacks = (tmp_path / "stuck.stacks").read_text()
    assert f"--- pid {child_pid}:" in stacks and stacks.count("--- pid ") == 2 and "faulthandler" in stacks
    assert "stuck_here" in (tmp_path / "stuck.log").read_text()  # the child's Python stack, from faulthandler
    assert not Path(f"/proc/{child_pid}").exists() or "Z" in Path(f"/proc/{child_pid}/stat").read_text().split()[2]
    assert json.loads((tmp_path / "rehearsal.json").read_text())["steps"]["stuck"]["exit"] == 124


def test_the_budget_is_shared_by_weight_and_unused_time_moves_on():
    reh = _rehearsal_module()
    budget = reh._Budget(230.0)
    first = budget.limit("prep")
    assert first == pytest.approx(230.0 * 1.0 / 11.5, rel=0.01)
    assert budget.limit("train-2proc") == pytest.approx(230.0 * 5.0 / 10.5, rel=0.01)
    assert reh._Budget(None).limit("prep") is None
