"""Numbered run directories ``<outdir>/00003-<preset>-<dataset>/`` (EDM2/StyleGAN naming, style guide §2).

A run directory holds ``config.json``, ``log.txt``, ``stats.jsonl``, ``metrics.jsonl``, ``training-state-*.pt``,
``snapshot-*.pt``, ``fakes*.png`` and ``train.lock``. The number is one more than the largest existing one.

While a process trains a run directory it holds :class:`RunLock` on it (issue 13 §2): an exclusive ``flock`` on
``train.lock``, which records the holder's PID and host. The kernel drops a ``flock`` when its process dies, so a
killed run never leaves the directory locked; the file itself stays (it only says who held it last).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from stages.common.lockfile import FileLock

logger = logging.getLogger(__name__)
_RUN_RE = re.compile(r"^(\d{5})-")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def run_number(path: Path) -> int | None:
    """The leading run number of a run directory name, or ``None``."""
    match = _RUN_RE.match(path.name)
    return int(match.group(1)) if match else None


LOCK_NAME = "train.lock"


def next_run_dir(outdir: str | Path, desc: str, create: bool = True) -> Path:
    """The next numbered run directory ``<outdir>/<NNNNN>-<desc>``; created unless ``create`` is False (a number
    taken meanwhile by a concurrent start is skipped)."""
    outdir = Path(outdir)
    while True:
        numbers = [n for p in outdir.glob("*") if p.is_dir() and (n := run_number(p)) is not None] \
            if outdir.is_dir() else []
        run_dir = outdir / f"{(max(numbers) + 1) if numbers else 0:05d}-{_slug(desc)}"
        if not create:
            return run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue


def run_dirs(outdir: str | Path) -> list[Path]:
    """The numbered run directories under ``outdir``, highest number first."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return []
    runs = [(n, p) for p in outdir.iterdir() if p.is_dir() and (n := run_number(p)) is not None]
    return [p for _, p in sorted(runs, reverse=True)]


def latest_run_dir(outdir: str | Path, require_state: bool = False) -> Path | None:
    """The highest-numbered run directory under ``outdir`` that has a ``config.json`` (and, with
    ``require_state``, a training state), or ``None``."""
    from stages.common.checkpoint import latest_training_state

    for p in run_dirs(outdir):
        if (p / "config.json").is_file() and (not require_state or latest_training_state(p) is not None):
            return p
    return None


class RunLock:
    """The exclusive lock of a process training a run directory (module docstring)."""

    @staticmethod
    def acquire(run_dir: str | Path) -> FileLock:
        """Lock ``run_dir`` or raise ``BadFileError`` naming the live holder (PID and host); ``.release()`` when done."""
        return FileLock.acquire(Path(run_dir) / LOCK_NAME, "another `3dgp train` ({holder}) is training this run directory",
                                subject=run_dir)


def attach_log_file(run_dir: str | Path, logger_name: str = "stages") -> logging.Handler:
    """Tee every ``stages.*`` log record into ``<run_dir>/log.txt`` (append); returns the handler to remove later."""
    handler = logging.FileHandler(Path(run_dir) / "log.txt", mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger(logger_name)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
