"""Shared settings of the train tests: the tiny preset made fast (batch 4, ticks of 2 iterations, no metrics)."""
from __future__ import annotations

from stages.train.overrides import Override, parse_set
from stages.train.resume import resolve_new_config

FAST = ["run.batch=4", "run.tick_kimg=0.008", "run.state_kimg=0.008", "run.snapshot_kimg=0", "run.image_kimg=0",
        "run.metrics=none", "loss.r1_interval=4"]


def tiny_cfg(data: str, kimg: float, *sets: str):
    """The tiny preset on ``data`` for ``kimg`` with the FAST settings and extra ``section.key=value`` sets."""
    overrides = [Override("--data", "data.path", data), Override("--kimg", "run.kimg", kimg)]
    return resolve_new_config("tiny", overrides + [parse_set(s) for s in FAST + list(sets)])
