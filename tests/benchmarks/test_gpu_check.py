"""The one-call GPU check parses and walks every step in dry mode on CPU (issue 12 §2)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("install", "doctor", "gpu-tests", "train-step", "render", "ddp", "toy64", "fid")


def test_gpu_check_parses_and_dry_runs(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_wheels.sh")], capture_output=True).returncode == 0
    proc = subprocess.run(["bash", str(script), str(tmp_path / "out"), "--quick", "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "out" / "summary.md").read_text()
    for step in STEPS:
        assert f"## {step}" in summary and f"DRY {step} " in proc.stdout
    assert "--kimg 2" in summary  # --quick shortens the toy64 run
    assert "ddp_rehearsal.py" in summary and "--device cuda:0 --preset imagenet" in summary
    bad = subprocess.run(["bash", str(script), str(tmp_path / "o2"), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --fast" in bad.stderr
