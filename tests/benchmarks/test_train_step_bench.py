"""``benchmarks/train_step.py`` section 3 (the GPU check's train-step step) runs end to end on CPU (issue 12 §2, §4)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_preset_table_on_cpu(tmp_path):
    out = tmp_path / "train_step.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--skip-small", "--skip-tiny", "--device", "cpu", "--presets",
         "tiny", "--precisions", "fp32,bf16", "--batch", "4", "--iterations", "3", "--matmul-n", "256", "--threads",
         "1", "--ops-policy", "composite", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads(out.read_text())["presets"]
    assert set(table["matmul_tflops"]) == {"fp32", "tf32", "bf16"}
    assert [(r["ops"], r["precision"]) for r in table["rows"]] == [
        ("ref", "fp32"), ("cuda", "fp32"), ("cuda", "bf16"), ("THREEDGP_OPS=composite", "fp32")]
    for row in table["rows"]:
        assert row["flops_per_iter"] > 1e8 and row["sec_per_kimg"] > 0 and math.isfinite(row["achieved_tflops"])
    # The same model and batch: the FLOP count does not depend on the ops or the precision.
    counts = {r["flops_per_iter"] for r in table["rows"]}
    assert max(counts) / min(counts) < 1.01
    assert "TFLOP/s achieved" in proc.stdout
