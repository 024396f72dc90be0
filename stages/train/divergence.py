"""Run health and divergence rules (issue 5, issue 12 §3; 3DGP ref §5.3, §10.2 README advice).

The official code never stops for a bad step: it replaces NaN gradient entries with 0 and +-inf with +-1e5 and goes
on (ref §5.3). We do the same and count the replaced entries per phase and tick (``Health/nonfinite_grads/<phase>``
in ``stats.jsonl``), so an occasional inf from fp16 discriminator blocks never rewinds a run. A run has diverged,
and rolls back to its last training state with a fresh seed stream, only when

(a) a loss is non-finite in ``run.nonfinite_loss_steps`` consecutive iterations (``Health/nonfinite_loss_steps``
    counts the iterations of the tick with one), or every observation of a loss in a tick was non-finite;
(b) a tick-mean loss exceeds ``run.diverge_loss_max`` (``Loss/D/r1_penalty``, an unscaled gradient norm, is not a
    loss and never triggers it);
(c) the first tracked metric is worse than its best value by ``run.diverge_metric_factor`` (off when 0).

After ``max_rollbacks`` rollbacks the run stops with :class:`~stages.common.errors.TrainingDiverged`. All counting
happens on the training device; :meth:`StepHealth.summary` syncs once per tick.
"""
from __future__ import annotations

import math

import torch

PHASES = ("Gall", "Dmain", "Dreg")
NOT_A_LOSS = frozenset({"Loss/D/r1_penalty"})  # reported under Loss/ for the official names, but a gradient norm


class StepHealth:
    """Per-tick, rank-local counters of non-finite losses and gradient entries, kept on ``device``."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        zero = torch.zeros((), dtype=torch.int64, device=self.device)
        self._grads = {phase: zero.clone() for phase in PHASES}
        self._step_bad = torch.zeros((), dtype=torch.bool, device=self.device)
        self._bad_steps, self._streak, self._max_streak = zero.clone(), zero.clone(), zero.clone()

    def check_loss(self, loss: torch.Tensor) -> None:
        """Note whether this micro-batch loss is non-finite (no host sync)."""
        self._step_bad |= ~torch.isfinite(loss.detach()).all()

    def add_grads(self, phase: str, num_bad: torch.Tensor) -> None:
        """Add the count of replaced gradient entries of one phase (a device tensor)."""
        self._grads[phase] += num_bad.to(self._grads[phase].device)

    def end_step(self) -> None:
        """Close one iteration: update the run of consecutive iterations with a non-finite loss."""
        bad = self._step_bad.long()
        self._bad_steps += bad
        self._streak = (self._streak + 1) * bad
        self._max_streak = torch.maximum(self._max_streak, self._streak)
        self._step_bad = torch.zeros_like(self._step_bad)

    def summary(self) -> dict[str, float]:
        """This tick's counters (one device-to-host copy): ``Health/*`` scalars plus ``max_streak`` (longest run of
        iterations with a non-finite loss) and ``streak`` (the run still going at the tick's end)."""
        values = torch.stack([*self._grads.values(), self._bad_steps, self._max_streak, self._streak]).cpu().tolist()
        out = {f"Health/nonfinite_grads/{phase}": float(v) for phase, v in zip(PHASES, values)}
        out["Health/nonfinite_loss_steps"] = float(values[len(PHASES)])
        out["max_streak"], out["streak"] = float(values[len(PHASES) + 1]), float(values[len(PHASES) + 2])
        return out

    def carry_streak_from(self, previous: "StepHealth") -> None:
        """Continue a streak of non-finite iterations across a tick boundary."""
        self._streak = previous._streak.clone()


def nonfinite_loss_reason(max_streak: float, limit: int, kimg: float) -> str | None:
    """Reason string when a loss was non-finite in ``limit`` consecutive iterations (0 disables the rule)."""
    if limit > 0 and max_streak >= limit:
        return (f"a loss was non-finite in {int(max_streak)} consecutive iterations (--set run.nonfinite_loss_steps="
                f"{limit}) before kimg {kimg:.3f}")
    return None


def tick_loss_blowup(scalars: dict[str, float], loss_max: float) -> str | None:
    """Reason string when a tick-mean ``Loss/*`` is non-finite (every observation in the tick was) or above
    ``loss_max`` (<= 0 disables the bound); ``NOT_A_LOSS`` names are skipped."""
    for name, value in sorted(scalars.items()):
        if not name.startswith("Loss/") or name in NOT_A_LOSS:
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


def run_health(health: StepHealth, world_size: int) -> dict[str, float]:
    """This tick's health counters over every process: counts summed, streaks the longest of any rank."""
    counts = health.summary()
    if world_size > 1:
        from stages.common.distributed import all_gather_object

        gathered = all_gather_object(counts)
        counts = {k: (max if k in ("max_streak", "streak") else sum)(g[k] for g in gathered) for k in counts}
    return counts
