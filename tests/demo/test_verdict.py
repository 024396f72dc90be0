"""The demo's 3D verdict (stages.demo): each criterion passes and fails on the numbers it should."""
from __future__ import annotations

import json

from stages.demo import SummaryRequest, judge, run
from stages.metrics.card import card_from_dict


def _card_dict(fid, nfs, ratio, mvc, gt, flat, spread, kimg=None):
    """A card; ``flat`` is the best planar baseline (the tilted plane), the others are worse."""
    planes = {"constant": 0.45, "tilted_plane": flat, "noisy_plane": flat + 0.05}
    return {"checkpoint": None if kimg is None else {"path": "snapshot.pt", "kimg": kimg}, "metrics": [
        {"kind": "fid", "value": fid, "unavailable": None, "details": {}},
        {"kind": "nfs", "value": nfs, "unavailable": None, "details": {}},
        {"kind": "mvc", "value": mvc, "unavailable": None, "details": {"parallax_ratio": ratio}},
        {"kind": "depth", "value": 0.1, "unavailable": None,
         "details": {"vs_ground_truth": gt, "planar_baselines_vs_ground_truth": planes}},
        {"kind": "camera", "value": spread, "unavailable": None, "details": {}},
    ]}


def _card(**numbers):
    return card_from_dict(_card_dict(**numbers))


INIT_DICT = _card_dict(fid=300.0, nfs=5.0, ratio=0.99, mvc=0.005, gt=0.15, flat=0.31, spread=1.0)
INIT = card_from_dict(INIT_DICT)


def test_a_3d_model_passes_every_criterion():
    final = _card(fid=120.0, nfs=12.0, ratio=0.6, mvc=0.02, gt=0.08, flat=0.31, spread=0.9)
    crit = judge(INIT, final)
    assert all(c.passed for c in crit), crit
    assert [c.final for c in crit] == [120.0, 12.0, 0.6, 0.02, 0.08, 0.9]
    assert "tilted plane 0.310" in crit[4].target  # the best planar baseline is named


def test_each_criterion_fails_on_its_own():
    good = dict(fid=120.0, nfs=12.0, ratio=0.6, mvc=0.02, gt=0.08, flat=0.31, spread=0.9)
    for change, index in [({"fid": 151.0}, 0), ({"nfs": 9.9}, 1), ({"ratio": 0.8}, 2), ({"gt": 0.125}, 4),
                          ({"gt": 0.1, "flat": 0.09}, 4), ({"spread": 0.3}, 5)]:
        crit = judge(INIT, _card(**{**good, **change}))
        assert [i for i, c in enumerate(crit) if not c.passed] == [index], (change, crit)


def test_summary_file_and_the_command(tmp_path, run_cli):
    (tmp_path / "init.json").write_text(json.dumps(INIT_DICT))
    (tmp_path / "final.json").write_text(json.dumps(_card_dict(fid=200.0, nfs=6.0, ratio=0.95, mvc=0.03, gt=0.2,
                                                               flat=0.31, spread=0.9, kimg=16.5)))
    crit = run(SummaryRequest(str(tmp_path), str(tmp_path / "init.json"), str(tmp_path / "final.json")))
    assert sum(c.passed for c in crit) == 2  # the information row and the camera spread
    assert "trained for 16.5 kimg (16,500 images)" in (tmp_path / "summary.md").read_text()
    (tmp_path / "summary.md").unlink()
    code, out, err = run_cli("demo", "summary", tmp_path, "--init", tmp_path / "init.json", "--final",
                             tmp_path / "final.json")
    assert code == 0 and "2 of 6 criteria met." in out, err
    assert (tmp_path / "summary.md").read_text().count("| FAIL |") == 4


def test_a_card_without_a_metric_the_verdict_needs_is_one_line(tmp_path, run_cli):
    (tmp_path / "init.json").write_text(json.dumps(INIT_DICT))
    (tmp_path / "final.json").write_text(json.dumps({"metrics": INIT_DICT["metrics"][:3]}))  # no depth, no camera
    code, _, err = run_cli("demo", "summary", tmp_path, "--init", tmp_path / "init.json", "--final",
                           tmp_path / "final.json")
    assert code == 1 and err == f"Error: {tmp_path / 'final.json'}: no available 'depth' metric (the demo's verdict " \
                                "reads fid, nfs, mvc, depth, camera)\n"
    assert not (tmp_path / "summary.md").exists()
