"""The demo's 3D verdict (stages.demo): each criterion passes and fails on the numbers it should."""
from __future__ import annotations

import json

from stages.demo import SummaryRequest, judge, run
from stages.metrics.card import card_from_dict


def _card_dict(nfs, ratio, mvc, gt, flat, spread):
    return {"metrics": [
        {"kind": "nfs", "value": nfs, "unavailable": None, "details": {}},
        {"kind": "mvc", "value": mvc, "unavailable": None, "details": {"parallax_ratio": ratio}},
        {"kind": "depth", "value": 0.1, "unavailable": None,
         "details": {"vs_ground_truth": gt, "flat_baseline_vs_ground_truth": flat}},
        {"kind": "camera", "value": spread, "unavailable": None, "details": {}},
    ]}


def _card(**numbers):
    return card_from_dict(_card_dict(**numbers))


INIT_DICT = _card_dict(nfs=5.0, ratio=0.99, mvc=0.005, gt=0.15, flat=0.31, spread=1.0)
INIT = card_from_dict(INIT_DICT)


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


def test_summary_file_and_the_command(tmp_path, run_cli):
    (tmp_path / "init.json").write_text(json.dumps(INIT_DICT))
    (tmp_path / "final.json").write_text(json.dumps(_card_dict(nfs=6.0, ratio=0.95, mvc=0.03, gt=0.2, flat=0.31,
                                                               spread=0.9)))
    crit = run(SummaryRequest(str(tmp_path), str(tmp_path / "init.json"), str(tmp_path / "final.json")))
    assert sum(c.passed for c in crit) == 2  # the information row and the camera spread
    (tmp_path / "summary.md").unlink()
    code, out, err = run_cli("demo", "summary", tmp_path, "--init", tmp_path / "init.json", "--final",
                             tmp_path / "final.json")
    assert code == 0 and "2 of 5 criteria met." in out, err
    assert (tmp_path / "summary.md").read_text().count("| FAIL |") == 3


def test_a_card_without_a_metric_the_verdict_needs_is_one_line(tmp_path, run_cli):
    (tmp_path / "init.json").write_text(json.dumps(INIT_DICT))
    (tmp_path / "final.json").write_text(json.dumps({"metrics": INIT_DICT["metrics"][:2]}))  # no depth, no camera
    code, _, err = run_cli("demo", "summary", tmp_path, "--init", tmp_path / "init.json", "--final",
                           tmp_path / "final.json")
    assert code == 1 and err == f"Error: {tmp_path / 'final.json'}: no available 'depth' metric (the demo's verdict " \
                                "reads nfs, mvc, depth, camera)\n"
    assert not (tmp_path / "summary.md").exists()
