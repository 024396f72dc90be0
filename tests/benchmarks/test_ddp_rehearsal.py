"""The GPU check's DDP rehearsal runs end to end on a CPU (issue 18 acceptance 5): torchrun with 2 processes, a
resume with 1, eval with 2 and 1 process(es); every check it makes passes, so a GPU session spends its minutes on
what only a GPU can show."""
from __future__ import annotations

import json
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
