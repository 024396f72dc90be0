"""Divergence detection (issue 5; peers-and-user-pain §3 item 5; 3DGP ref §10.2 README advice).

A run has diverged when (a) a loss or gradient is non-finite in any micro-batch, (b) a tick-mean loss exceeds
``diverge_loss_max``, or (c) the first tracked metric is worse than its best value by ``diverge_metric_factor``
(off when 0). The loop then rolls back to the last good training state, switches to a new seed stream and goes on;
after ``max_rollbacks`` rollbacks it raises :class:`~stages.common.errors.TrainingDiverged`.
"""
from __future__ import annotations

import math


class StepHealth:
    """Records the first non-finite loss / gradient seen during a tick (rank-local)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def check_loss(self, phase: str, value: float, kimg: float) -> None:
        if self.reason is None and not math.isfinite(value):
            self.reason = f"non-finite {phase} loss ({value}) at kimg {kimg:.3f}"

    def check_grads(self, phase: str, num_bad: int, kimg: float) -> None:
        if self.reason is None and num_bad > 0:
            self.reason = f"{num_bad} non-finite {phase} gradient entries at kimg {kimg:.3f}"


def tick_loss_blowup(scalars: dict[str, float], loss_max: float) -> str | None:
    """Reason string when a tick-mean ``Loss/*`` is non-finite or above ``loss_max`` (<= 0 disables the bound)."""
    for name, value in sorted(scalars.items()):
        if not name.startswith("Loss/"):
            continue
        if not math.isfinite(value):
            return f"tick-mean {name} is {value}"
        if loss_max > 0 and value > loss_max:
            return f"tick-mean {name} = {value:.4g} exceeds --set run.diverge_loss_max={loss_max:g}"
    return None


def metric_blowup(name: str, value: float, best: float | None, factor: float, lower_is_better: bool) -> str | None:
    """Reason string when ``value`` is ``factor`` times worse than ``best`` (factor <= 0 disables the rule)."""
    if not math.isfinite(value):
        return f"metric {name} is {value}"
    if factor <= 0 or best is None:
        return None
    if lower_is_better and value > best * factor:
        return f"metric {name} = {value:.4g} is more than {factor:g}x its best {best:.4g}"
    if not lower_is_better and value * factor < best:
        return f"metric {name} = {value:.4g} fell below 1/{factor:g} of its best {best:.4g}"
    return None
