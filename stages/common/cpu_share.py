"""How many of our CPU cores other processes are using, and torch's thread count to match (issue 21 §3).

torch runs each CPU op on one OpenMP thread per core, and every op ends at a barrier. When another program keeps a
core busy, the thread that shares it runs a fraction of the time and the whole team waits for it at each barrier:
measured on the 2-core machine beside a one-thread CPU hog, the demo's training step took 51 sec/kimg with 2 threads
against 15.8 with 1 (14.0 alone). So with ``--threads auto`` the training loop sizes the team to the cores the
others leave free (:class:`ThreadGovernor`), re-checked at every tick; ``--threads N`` fixes it and the default
keeps torch's own choice (one per core) -- results can differ in the last bits between thread counts (reductions
split differently), which is why ``auto`` is opt-in (the demo uses it).

The measurement is Linux's ``/proc/stat`` (busy time of the cores this process may run on) minus this process's
own CPU time (``time.process_time``) over the same interval. Where it is unavailable (macOS, Windows), ``auto``
keeps the thread count it has. Several processes of one run on one node (``train --gpus N`` on a CPU, or
torchrun) split the free cores between them: each counts its siblings' use (taken to be its own, they run in
lockstep) as its own run's, not as another program's, and takes ``free // N`` threads -- otherwise each would start
with one thread per core and the first tick runs N-fold oversubscribed (measured: 142 sec/kimg against 18 for the
demo with ``--gpus 2``).
"""
from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger(__name__)

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (not idle, iowait, guest: in user)


def usable_cores() -> list[int]:
    """The CPU numbers this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _busy_seconds(cores: list[int]) -> float | None:
    """Busy CPU seconds of ``cores`` since boot, from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{n}" for n in cores}
    ticks = 0
    found = 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            values = [int(v) for v in parts[1:]]
            ticks += sum(values[i] for i in _BUSY_FIELDS if i < len(values))
            found += 1
    if found == 0:
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    return time.process_time()  # user + system CPU time of every thread of this process


class CpuShare:
    """Cores used by other processes between successive :meth:`others` calls."""

    def __init__(self, cores: list[int] | None = None):
        self.cores = cores if cores is not None else usable_cores()
        self.own_rate = 0.0  # cores this process kept busy over the last interval
        self._last = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(self.cores), _own_seconds()

    def others(self) -> float | None:
        """Average number of our cores that other processes kept busy since the last call (or since construction);
        None where /proc/stat is unavailable or no time passed."""
        now = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        if busy0 is None or busy1 is None or t1 - t0 <= 0:
            return None
        self.own_rate = max(0.0, own1 - own0) / (t1 - t0)
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


def threads_for(cores: int, others: float, processes: int = 1) -> int:
    """Free cores (``cores`` less the ones other programs use, rounded) split between this run's ``processes`` on the
    node; at least 1."""
    free = max(1, min(cores, cores - int(others + 0.5)))
    return max(1, free // max(1, processes))


def parse_threads(value: str | None) -> int | str | None:
    """``--threads``: None (torch's default), ``"auto"`` or a positive int; ValueError names what is wrong."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"must be 'auto' or a positive number of threads, got {value!r}")
    return int(text)


class ThreadGovernor:
    """``--threads auto``: torch's intra-op threads = the cores other processes leave free, updated by :meth:`update`
    (the training loop calls it at every tick), split between the run's ``processes`` on this node. ``configure`` is
    called after every change (flush-to-zero on the new OpenMP workers)."""

    def __init__(self, configure=None, share: CpuShare | None = None, processes: int = 1):
        self.share = share or CpuShare()
        self.configure = configure
        self.processes = max(1, int(processes))

    def update(self) -> int | None:
        """Re-size the team from the share measured since the last call; the new count, or None if unchanged."""
        import torch

        others = self.share.others()
        if others is None:
            return None
        cores = len(self.share.cores)
        siblings = (self.processes - 1) * self.share.own_rate  # this run's other processes
        others = max(0.0, others - siblings)
        wanted = threads_for(cores, others, self.processes)
        if wanted == torch.get_num_threads():
            return None
        split = f"; {self.processes} processes of this run share the rest" if self.processes > 1 else ""
        logger.info("CPU threads %d -> %d (other processes are using %.1f of %d cores%s)", torch.get_num_threads(),
                    wanted, others, cores, split)
        torch.set_num_threads(wanted)
        if self.configure is not None:
            self.configure()
        return wanted


THREADS_ENV = "THREEDGP_THREADS"
FIRST_LOOK_S = 0.5  # how long the first measurement of ``auto`` watches the machine


def apply_threads(value: int | str | None, configure=None, processes: int = 1) -> ThreadGovernor | None:
    """Apply a ``--threads`` setting (or, when None, ``$THREEDGP_THREADS``) to this process: a number sets torch's
    intra-op threads, ``auto`` sizes them to the free cores now (split between the run's ``processes`` on this node)
    and returns the governor that keeps doing so (``update()`` at every tick); None keeps torch's default.
    ``configure`` runs after a change."""
    import torch

    if value is None:
        value = os.environ.get(THREADS_ENV) or None
        if value is None:
            return None
        try:
            value = parse_threads(value)
        except ValueError as exc:
            from stages.common.errors import ThreeDGPError

            raise ThreeDGPError(f"{THREADS_ENV}: {exc}") from None
    if value == "auto":
        governor = ThreadGovernor(configure, processes=processes)
        time.sleep(FIRST_LOOK_S)
        governor.update()
        return governor
    if value != torch.get_num_threads():
        torch.set_num_threads(int(value))
        if configure is not None:
            configure()
    return None
