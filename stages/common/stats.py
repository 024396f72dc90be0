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
    """Running mean of named scalars between two :meth:`reduce` calls, kept on the tensors' device.

    Tensor observations stay where they are (no host sync per report: issue 12 §3): each report only keeps the
    detached value, and the finiteness test and the sums run once per name, vectorised, when :meth:`reduce` comes
    (or every ``FOLD_EVERY`` observations of a name, which bounds the memory of a long tick); ``reduce`` brings every
    sum to the host in one transfer. Non-finite observations are left out of the mean (they are counted by
    :class:`stages.train.divergence.StepHealth`); a name whose every observation was non-finite reduces to NaN."""

    FOLD_EVERY = 256  # pending tensor observations of one name before they are summed

    def __init__(self, device=None) -> None:
        self.device = device  # where the reduction runs: the process's compute device, the same kind on every rank
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, Any] = {}
        self._pending: dict[str, tuple[list, list[float]]] = {}  # name -> (0-d float32 tensors, weights)

    def report(self, name: str, value: Any, weight: float = 1.0) -> None:
        """Add one observation (a python number or a tensor; tensors are averaged over their elements)."""
        if hasattr(value, "detach"):
            import torch

            value = value.detach()
            if value.ndim or value.dtype != torch.float32:  # a 0-d float32 loss is its own mean
                value = value.float().mean()
            values, weights = self._pending.setdefault(name, ([], []))
            values.append(value)
            weights.append(float(weight))
            if len(values) >= self.FOLD_EVERY:
                self._fold(name)
            self._sums.setdefault(name, 0.0)
            self._counts.setdefault(name, 0.0)
            return
        value = float(value)
        count = float(weight) if math.isfinite(value) else 0.0
        value = value * weight if count else 0.0
        self._add(name, value, count)

    def _add(self, name: str, value: Any, count: Any) -> None:
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts[name] + count if name in self._counts else count

    def _fold(self, name: str) -> None:
        """Sum ``name``'s pending tensor observations (finite ones only) into its running sums."""
        import torch

        values, weights = self._pending.pop(name, ([], []))
        if not values:
            return
        v = torch.stack(values)  # [n] on the values' device
        w = torch.tensor(weights, dtype=v.dtype).to(v.device, non_blocking=True)  # [n]
        finite = torch.isfinite(v)
        self._add(name, (torch.where(finite, v, 0.0) * w).sum(), (finite * w).sum())

    def _table(self, names: list[str]):
        """``[2, len(names)]`` float64 sums and counts (0 when absent) on :attr:`device`."""
        import torch

        values = [self._sums.get(n, 0.0) for n in names] + [self._counts.get(n, 0.0) for n in names]
        device = torch.device(self.device if self.device is not None else "cpu")
        if not values:
            return torch.zeros(2, 0, dtype=torch.float64, device=device)
        return torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in values]).view(2, -1)

    def reduce(self, world_size: int = 1) -> dict[str, float]:
        """Means since the last call, averaged over processes (every rank must call it); then reset.

        With several processes the names are agreed first (ranks may have reported different ones), then the
        sums and counts are summed by one all_reduce of a tensor on :attr:`device` (NCCL serves only CUDA tensors:
        issue 18 row 1; every rank uses the same kind of device), and brought to the host in one transfer."""
        from stages.common.distributed import all_gather_object, all_reduce_sum_

        for name in list(self._pending):
            self._fold(name)
        names = sorted(self._sums)
        if world_size > 1:
            names = sorted(set().union(*all_gather_object(names)))
        table = self._table(names)
        if world_size > 1 and names:
            all_reduce_sum_(table)
        sums, counts = table.cpu().tolist() if names else ([], [])
        self._sums.clear()
        self._counts.clear()
        return {n: (s / c if c else math.nan) for n, s, c in zip(names, sums, counts)}


def _json_safe(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class StatsWriter:
    """Appends ``{"kimg", "tick", "timestamp", **scalars}`` lines to ``stats.jsonl`` and TensorBoard events to
    ``tensorboard/`` (rank 0 only; issue 18 "Watching a long run").

    TensorBoard is a dependency of the project; where it is missing anyway, one warning says that events are off
    and ``stats.jsonl`` is still written. Events use the image count (kimg * 1000) as the step. The event writer is
    opened at the first record: when the folder already holds events (a resumed run), that record's step is the
    ``purge_step``, so TensorBoard hides what an abandoned continuation wrote from there on (as ``stats.jsonl`` is
    trimmed by :func:`stages.common.rundir.trim_run_logs`)."""

    _tb_warned = False  # the missing-TensorBoard warning is given once per process

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "stats.jsonl"
        self.enabled = enabled
        self.tb_dir = Path(run_dir) / "tensorboard"
        self._tb = None
        self._tb_class = self._summary_writer_class() if enabled and tensorboard else None

    @staticmethod
    def _summary_writer_class():
        """``torch.utils.tensorboard.SummaryWriter``, or None with one warning when TensorBoard cannot be imported."""
        try:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install (e.g. a protobuf mismatch)
            if not StatsWriter._tb_warned:
                logger.warning("TensorBoard events are off: tensorboard cannot be imported (%s: %s); stats.jsonl "
                               "only. Install it with `pip install tensorboard`", type(exc).__name__, exc)
                StatsWriter._tb_warned = True
            return None

    def _events(self, step: int):
        """The SummaryWriter, opened on first use (None when TensorBoard is off)."""
        if self._tb is None and self._tb_class is not None:
            resumed = self.tb_dir.is_dir() and any(self.tb_dir.glob("events.out.tfevents.*"))
            try:
                self._tb = self._tb_class(str(self.tb_dir), purge_step=step if resumed else None)
            except Exception as exc:  # noqa: BLE001 - e.g. an unwritable folder: the run goes on without events
                logger.warning("TensorBoard events are off: cannot write %s (%s); stats.jsonl only", self.tb_dir,
                               exc)
                self._tb_class = None
        return self._tb

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
        step = int(round(kimg * 1000))  # images shown
        tb = self._events(step)
        if tb is not None:
            for name, value in scalars.items():
                if math.isfinite(value):
                    tb.add_scalar(name, value, global_step=step)
            tb.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


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
