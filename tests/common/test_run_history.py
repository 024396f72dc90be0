"""``set_aside_later_progress``: what a run directory keeps when it continues from an older state (issue 19 §7)."""
from __future__ import annotations

import json

from stages.common.rundir import set_aside_later_progress
from stages.common.stats import read_jsonl


def _jsonl(path, records, torn: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + torn)


def test_later_records_and_files_move_aside(tmp_path):
    _jsonl(tmp_path / "stats.jsonl", [{"kimg": k, "tick": i} for i, k in enumerate((0.5, 1.0, 1.5, 2.0))],
           torn='{"kimg": 2.5, "ti')  # killed mid-write
    _jsonl(tmp_path / "metrics.jsonl", [{"kimg": 0.0, "fid": 9.0}, {"kimg": 2.0, "fid": 5.0},
                                        {"kimg": 0.0, "source": "eval", "fid": 9.1}])
    for name in ("training-state-000001.000.pt", "training-state-000002.000.pt", "snapshot-000002.000.pt",
                 "snapshot-000002.000.metrics.json", "fakes000002.000.png", "fakes000001.000.png", "config.json"):
        (tmp_path / name).write_text("x")
    messages = set_aside_later_progress(tmp_path, 1000)
    assert len(messages) == 1 and "discarded-after-000001.000/" in messages[0]
    assert [r["kimg"] for r in read_jsonl(tmp_path / "stats.jsonl")] == [0.5, 1.0]
    assert (tmp_path / "stats.jsonl").read_text().endswith("\n")  # the next append starts a clean line
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"kimg": 0.0, "fid": 9.0},
                                                      {"kimg": 0.0, "source": "eval", "fid": 9.1}]
    aside = tmp_path / "discarded-after-000001.000"
    assert sorted(p.name for p in aside.iterdir()) == [
        "fakes000002.000.png", "metrics.jsonl", "snapshot-000002.000.metrics.json", "snapshot-000002.000.pt",
        "stats.jsonl", "training-state-000002.000.pt"]
    assert len((aside / "stats.jsonl").read_text().splitlines()) == 5  # the original, torn line included
    assert not list(tmp_path.glob("*.tmp"))


def test_nothing_later_changes_nothing(tmp_path):
    _jsonl(tmp_path / "stats.jsonl", [{"kimg": 0.5}, {"kimg": 1.0}])
    (tmp_path / "training-state-000001.000.pt").write_text("x")
    before = (tmp_path / "stats.jsonl").read_text()
    assert set_aside_later_progress(tmp_path, 1000) == []
    assert (tmp_path / "stats.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.jsonl", "training-state-000001.000.pt"]


def test_a_second_resume_gets_its_own_folder(tmp_path):
    for _ in range(2):
        _jsonl(tmp_path / "stats.jsonl", [{"kimg": 0.5}, {"kimg": 1.0}])
        set_aside_later_progress(tmp_path, 500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["discarded-after-000000.500",
                                                           "discarded-after-000000.500-2", "stats.jsonl"]
