"""scripts/demo.sh (``make demo``) end to end in smoke mode: every step runs, every promised file exists, and a rerun
redoes nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEMO_SMOKE="1", DEMO_NUM="16", DEMO_MINUTES="1", THREEDGP=str(Path(sys.executable).parent /
               "3dgp"), PYTHON=sys.executable, THREEDGP_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    return subprocess.run(["bash", "scripts/demo.sh", str(out)], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_demo_chain_in_smoke_mode(tmp_path):
    out = tmp_path / "demo"
    proc = _run(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = next((out / "runs").iterdir())
    assert (run / "snapshot-000000.000.pt").is_file()  # the initial model, the verdict's baseline
    assert "device cpu (1 thread(s)), " in (run / "log.txt").read_text()  # the same model on a quiet or busy machine
    for name in ("toy_preview.png", "eval/init.json", "eval/final.json", "export/report.html", "export/grid.png",
                 "readme/grid.png", "summary.md"):
        assert (out / name).is_file(), name
    assert list((out / "export" / "videos").glob("*.mp4")) and list((out / "export" / "meshes").glob("*.glb"))
    assert list((out / "readme").glob("grid-orbit-both.gif"))
    summary = (out / "summary.md").read_text()
    assert "non-flatness" in summary and "criteria met." in summary
    assert "| criterion | init | final |" in proc.stdout and "export/report.html" in proc.stdout
    before = {p: p.stat().st_mtime_ns for p in (out / "eval" / "final.json", out / "export" / "report.html")}
    proc = _run(out)  # rerun: nothing is recomputed
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before and len(list((out / "runs").iterdir())) == 1
