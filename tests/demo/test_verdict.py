"""The demo's 3D verdict (stages.demo): each criterion passes and fails on the numbers it should."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stages.demo import judge, summarize

REPO = Path(__file__).resolve().parents[2]


def _card(nfs, ratio, mvc, gt, flat, spread):
    return {"metrics": [
        {"kind": "nfs", "value": nfs, "unavailable": None, "details": {}},
        {"kind": "mvc", "value": mvc, "unavailable": None, "details": {"parallax_ratio": ratio}},
        {"kind": "depth", "value": 0.1, "unavailable": None,
         "details": {"vs_ground_truth": gt, "flat_baseline_vs_ground_truth": flat}},
        {"kind": "camera", "value": spread, "unavailable": None, "details": {}},
    ]}


INIT = _card(nfs=5.0, ratio=0.99, mvc=0.005, gt=0.15, flat=0.31, spread=1.0)


def test_a_3d_model_passes_every_criterion():
    final = _card(nfs=12.0, ratio=0.6, mvc=0.02, gt=0.08, flat=0.31, spread=0.9)
    crit = judge(INIT, final)
    assert all(c.passed for c in crit), crit
    assert [c.final for c in crit] == [12.0, 0.6, 0.02, 0.08, 0.9]


def test_each_criterion_fails_on_its_own():
    good = dict(nfs=12.0, ratio=0.6, mvc=0.02, gt=0.08, flat=0.31, spread=0.9)
    for change, index in [({"nfs": 9.9}, 0), ({"ratio": 0.8}, 1), ({"gt": 0.125}, 3), ({"gt": 0.1, "flat": 0.09}, 3),
                          ({"spread": 0.3}, 4)]:
        crit = judge(INIT, _card(**{**good, **change}))
        assert [i for i, c in enumerate(crit) if not c.passed] == [index], (change, crit)


def test_summary_file_and_module_entry_point(tmp_path):
    (tmp_path / "init.json").write_text(json.dumps(INIT))
    (tmp_path / "final.json").write_text(json.dumps(_card(nfs=6.0, ratio=0.95, mvc=0.03, gt=0.2, flat=0.31,
                                                          spread=0.9)))
    crit = summarize(tmp_path, tmp_path / "init.json", tmp_path / "final.json")
    assert sum(c.passed for c in crit) == 2  # the information row and the camera spread
    proc = subprocess.run([sys.executable, "-m", "stages.demo", str(tmp_path), "--init", str(tmp_path / "init.json"),
                           "--final", str(tmp_path / "final.json")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "2 of 5 criteria met." in proc.stdout
    assert (tmp_path / "summary.md").read_text().count("| FAIL |") == 3
