"""The training status line: its ETA is the sooner of the kimg target and a --minutes budget."""
from __future__ import annotations

import re

import torch

from stages.train.reporting import format_duration, status_line


def _eta(line: str) -> str:
    return re.search(r"eta (\S+)", line).group(1)


def test_eta_is_the_sooner_of_the_kimg_target_and_the_minutes_left():
    cpu = torch.device("cpu")
    by_kimg = status_line(3, 10.0, 70.0, 30.0, {}, cpu)  # 60 kimg x 30 s = 30 min
    assert _eta(by_kimg) == "30m00s"
    assert _eta(status_line(3, 10.0, 70.0, 30.0, {}, cpu, seconds_left=300.0)) == "5m00s"  # budget ends first
    assert _eta(status_line(3, 10.0, 70.0, 30.0, {}, cpu, seconds_left=7200.0)) == "30m00s"  # kimg target first
    assert _eta(status_line(3, 10.0, 70.0, float("nan"), {}, cpu, seconds_left=-5.0)) == "0m00s"
    assert _eta(status_line(3, 10.0, 70.0, float("nan"), {}, cpu)) == "?"
    assert format_duration(3 * 3600 + 20 * 60) == "3h20m" and format_duration(2 * 86400 + 4 * 3600) == "2d04h"
