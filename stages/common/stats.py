"""Named training scalars -> ``stats.jsonl`` (+ TensorBoard when installed) (style guide principle 12).

Names are hierarchical like StyleGAN3's ``training_stats.report``: ``Loss/G/adv``, ``Loss/D/r1``, ``Camera/yaw/std``,
``Schedule/blur_sigma``. :class:`StatsCollector` accumulates sums and counts between ticks (all ranks), reduces them
over processes at the tick boundary, and :class:`StatsWriter` appends one JSON line per tick on rank 0.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class StatsCollector:
    """Running mean of named scalars between two :meth:`reduce` calls."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, float] = {}

    def report(self, name: str, value: Any, weight: float = 1.0) -> None:
        """Add one observation (a python number or a tensor; tensors are averaged over their elements)."""
        if hasattr(value, "detach"):
            value = float(value.detach().float().mean().cpu())
        value = float(value)
        self._sums[name] = self._sums.get(name, 0.0) + value * weight
        self._counts[name] = self._counts.get(name, 0.0) + weight

    def reduce(self, world_size: int = 1) -> dict[str, float]:
        """Means since the last call, averaged over processes (every rank must call it); then reset."""
        names = sorted(self._sums)
        if world_size > 1:
            import torch
            import torch.distributed as dist

            # Ranks may have reported different names: agree on the union first.
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
            buf = torch.tensor([[self._sums.get(n, 0.0), self._counts.get(n, 0.0)] for n in names],
                               dtype=torch.float64).reshape(-1, 2)
            dist.all_reduce(buf)
            sums, counts = buf[:, 0].tolist(), buf[:, 1].tolist()
        else:
            sums = [self._sums[n] for n in names]
            counts = [self._counts[n] for n in names]
        self._sums.clear()
        self._counts.clear()
        return {n: (s / c if c else math.nan) for n, s, c in zip(names, sums, counts)}


def _json_safe(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class StatsWriter:
    """Appends ``{"kimg", "tick", "timestamp", **scalars}`` lines to ``stats.jsonl`` and TensorBoard (rank 0 only)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "stats.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                logger.debug("tensorboard not installed; stats.jsonl only")

    def write(self, kimg: float, tick: int, scalars: dict[str, float], event: str | None = None) -> None:
        """Append one record; ``event`` (e.g. a rollback reason) is stored as a string field."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"kimg": round(kimg, 3), "tick": tick, "timestamp": time.time()}
        if event is not None:
            record["event"] = event
        record.update({k: _json_safe(v) for k, v in scalars.items()})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for name, value in scalars.items():
                if math.isfinite(value):
                    self._tb.add_scalar(name, value, global_step=int(kimg * 1000))
            self._tb.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()


def read_jsonl(path: str | Path) -> list[dict]:
    """All records of a JSON-lines file (a torn last line from a crash is skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
