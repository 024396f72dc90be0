"""The decode worker pool. A worker that dies (the kernel's out-of-memory killer picks one, or a ``kill -9``) must
not hang the prep: ``multiprocessing.Pool`` would wait forever for the task the dead worker held (and can hang in
``terminate`` too), so this uses ``concurrent.futures.ProcessPoolExecutor``, which watches its processes and fails
every pending task with ``BrokenProcessPool``. That becomes one line naming ``--workers``; the batches committed so
far stay in ``OUT.partial``, so the same command resumes (issue 13 §2).

Workers are forked up front, before any model loads (fork is cheap and safe at that point), and ignore SIGINT:
Ctrl-C interrupts the main process, which stops them. They also die with their parent (issue 19 §1): when the main
process is killed (``kill -9``, SIGTERM, the out-of-memory killer) nothing is left to stop them, and they would live
on blocked on their pipes. On Linux the kernel sends them SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); on
every system a watcher thread in each worker exits it once its parent PID changes. (The output lock is not theirs:
:mod:`stages.common.lockfile` closes inherited lock descriptors in every forked child.)
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from stages.common.errors import BadOptionError

PREFETCH_BATCHES = 2  # decoded batches queued ahead of the writer (bounds memory)
PARENT_POLL_SECONDS = 0.5  # how often a worker's watcher thread checks that its parent is alive
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when ``parent_pid`` does: the kernel's parent-death signal where there is
    one, and a daemon thread that watches the parent PID everywhere (a re-parented process sees another PID)."""
    if os.uname().sysname == "Linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # the running program's symbols include libc's
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher thread below still ends the worker
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """Worker start-up: Ctrl-C is the main process's to handle, and the worker dies with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)


def _map_chunk(fn: Callable, items: list) -> list:
    return [fn(item) for item in items]


def _noop() -> None:
    return None


class WorkerPool:
    """``workers`` decode processes; :meth:`result` turns a dead worker into a one-line error."""

    def __init__(self, workers: int):
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.size = workers
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                            initargs=(os.getpid(),))
        for future in [self.executor.submit(_noop) for _ in range(workers)]:
            future.result()  # start every process now, before torch and its threads exist in this process
        self.processes = dict(self.executor._processes)  # pid -> Process, for the exit code in the message

    def submit(self, fn: Callable, items: list) -> list:
        """Start ``fn`` over ``items`` (in order) in a few chunks; returns a job for :meth:`result`."""
        size = max(1, len(items) // (4 * self.size))
        try:
            return [self.executor.submit(_map_chunk, fn, items[i : i + size]) for i in range(0, len(items), size)]
        except BrokenProcessPool:
            raise self._died() from None

    def result(self, job: list) -> list:
        """The job's results, in order; raises BadOptionError naming --workers when a worker process died."""
        out = []
        try:
            for future in job:
                out += future.result()
        except BrokenProcessPool:
            raise self._died() from None
        return out

    def map(self, fn: Callable, items: list) -> list:
        return self.result(self.submit(fn, items))

    def _died(self) -> BadOptionError:
        for process in self.processes.values():  # the executor stops the others; wait for every exit code
            process.join(timeout=2)
        codes = [p.exitcode for p in self.processes.values() if p.exitcode not in (None, 0, -signal.SIGTERM)]
        code = codes[0] if codes else None
        if code is None:
            how = "died"
        elif code < 0:
            how = f"was killed by signal {-code} ({_signal_name(-code)}" + (
                ", likely the out-of-memory killer)" if code == -signal.SIGKILL else ")")
        else:
            how = f"exited with code {code}"
        return BadOptionError(
            "--workers", f"a decode worker process {how}; the items finished so far are kept: run the same command "
            "again to continue (with fewer --workers or a smaller --batch-size if memory is short)"
        )

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after the last task, or at once (``abort``: an error or Ctrl-C in the main process)."""
        if abort:
            for process in self.processes.values():
                if process.exitcode is None:
                    process.terminate()
        self.executor.shutdown(wait=True, cancel_futures=True)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def make_pool(workers: int) -> WorkerPool | None:
    """A worker pool, created before any model loads; None for 0 workers (decode in this process)."""
    return WorkerPool(workers) if workers > 0 else None


def decoded_batches(pool: WorkerPool | None, fn: Callable, units, start: int, batch: int) -> Iterator[tuple[int, list]]:
    """Yield ``(first position, results)`` per batch of ``units[start:]``, in order, decoding ahead in ``pool``."""
    pending: deque = deque()
    position = start
    while pending or position < len(units):
        while position < len(units) and len(pending) <= PREFETCH_BATCHES:
            chunk = units[position : position + batch]
            pending.append((position, pool.submit(fn, chunk) if pool else chunk))
            position += len(chunk)
        first, job = pending.popleft()
        yield first, (pool.result(job) if pool else [fn(u) for u in job])
