"""The metric card read back (``stages.metrics.card.load_card``, issue 20 §5): typed, frozen, non-finite restored."""
from __future__ import annotations

import dataclasses
import math
import re

import pytest

from stages.common.errors import BadFileError
from stages.metrics.card import build_card, load_card, write_json_atomic
from stages.metrics.compute import MetricResult


def test_what_eval_writes_reads_back_typed(tmp_path):
    results = [MetricResult("fid2k_full", "fid", float("nan"), num_fakes=2048, num_reals=100, seconds=1.5),
               MetricResult("nfs256", "nfs", 7.5, std=0.5, num_fakes=256, details={"bins": 64, "x": float("inf")}),
               MetricResult("is50k", "is", None, unavailable="IS unavailable: no --is-weights")]
    card = build_card(results, fakes={"kind": "generator", "seed": 0}, reference={"path": "ds", "num_items": 100},
                      detector={"resize": "stylegan"}, device="cpu", wall_seconds=3.25, command="3dgp eval x",
                      checkpoint={"path": "runs/0/snapshot-000004.000.pt", "kimg": 4, "sha256": "ab"})
    path = write_json_atomic(card, tmp_path / "card.json")
    read = load_card(path)
    assert read.path == str(path) and read.device == "cpu" and read.command == "3dgp eval x"
    assert read.checkpoint.kimg == 4.0 and read.checkpoint.path.endswith("snapshot-000004.000.pt")
    fid = read.metric("fid2k_full")
    assert math.isnan(fid.value) and fid.num_fakes == 2048 and fid.num_reals == 100 and fid.available
    nfs = read.first_of_kind("nfs")
    assert (nfs.value, nfs.std, nfs.details["bins"], nfs.details["x"]) == (7.5, 0.5, 64, math.inf)
    assert read.first_of_kind("is") is None and read.metric("is50k").unavailable.startswith("IS unavailable")
    assert set(read.values()) == {"fid2k_full", "nfs256"}
    assert read.reference["num_items"] == 100 and read.fakes["kind"] == "generator"
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.device = "cuda"
    with pytest.raises(TypeError):
        nfs.details["bins"] = 1


@pytest.mark.parametrize("text, message", [(None, "cannot read"), ("{not json", "not a JSON metric card"),
                                           ('{"metrics": 3}', "not a metric card (no 'metrics' list)"),
                                           ("[1, 2]", "not a metric card")])
def test_a_bad_card_is_one_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "card.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BadFileError, match=re.escape(message)) as info:
        load_card(path)
    assert str(info.value).startswith(f"{path}: ")
