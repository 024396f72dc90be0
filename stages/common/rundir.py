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


# Files named by the progress point they record (stages.common.checkpoint.kimg_tag): training states, snapshots
# (and the metric cards `3dgp eval` writes beside them), and image grids.
_PROGRESS_FILE_RE = re.compile(r"^(?:training-state-|snapshot-|fakes)(\d+\.\d{3})(?:\.|$)")
PROGRESS_LOGS = ("stats.jsonl", "metrics.jsonl")


def _split_log(path: Path, kimg: float) -> tuple[list[str], int]:
    """(lines to keep, number of lines to drop) of a JSON-lines log: records after ``kimg`` and torn lines (a crash
    mid-write; the next append would glue a new record onto it) go, everything else stays."""
    import json

    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        torn = not isinstance(record, dict) or not line.endswith("\n")
        later = not torn and isinstance(record.get("kimg"), (int, float)) and record["kimg"] > kimg + 5e-4
        if torn or later:
            dropped += 1
        else:
            keep.append(line)
    return keep, dropped


def set_aside_later_progress(run_dir: str | Path, cur_nimg: int) -> list[str]:
    """Before a run continues from its training state at ``cur_nimg``: move what a later continuation wrote out of
    the way (issue 19 §7), so the run directory reads as one history and nothing of the abandoned branch is picked
    up later. Returns what was done, as messages to log (empty when there was nothing after ``cur_nimg``).

    Training states, snapshots (with their eval cards) and image grids after ``cur_nimg`` move to
    ``discarded-after-<kimg>/`` (otherwise a later ``--resume`` or a rollback would pick the abandoned branch's newest
    state, and pruning would delete the new branch's); ``stats.jsonl`` and ``metrics.jsonl`` keep their records up
    to ``cur_nimg`` (rewritten atomically: a temporary file, then ``os.replace``) and the full originals go to the
    same folder. TensorBoard hides the abandoned events itself (``stages.common.stats.StatsWriter``)."""
    import os
    import shutil

    from stages.common.checkpoint import kimg_tag

    run_dir, kimg = Path(run_dir), cur_nimg / 1000
    later = sorted(p for p in run_dir.iterdir() if p.is_file() and (m := _PROGRESS_FILE_RE.match(p.name))
                   and float(m.group(1)) > kimg + 5e-4)
    logs = {}
    for name in PROGRESS_LOGS:
        if (run_dir / name).is_file():
            keep, dropped = _split_log(run_dir / name, kimg)
            if dropped:
                logs[name] = (keep, dropped)
    if not later and not logs:
        return []
    aside = run_dir / f"discarded-after-{kimg_tag(cur_nimg)}"
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir / f"discarded-after-{kimg_tag(cur_nimg)}-{n}"
    aside.mkdir()
    for path in later:
        os.replace(path, aside / path.name)
    parts = [f"{len(later)} later checkpoint/image file(s)"] if later else []
    for name, (keep, dropped) in logs.items():
        shutil.copy2(run_dir / name, aside / name)  # the full original first: nothing is lost if we stop here
        tmp = run_dir / f"{name}.tmp"
        tmp.write_text("".join(keep), encoding="utf-8")
        os.replace(tmp, run_dir / name)
        parts.append(f"{dropped} {name} record(s)")
    return [f"resuming at kimg {kimg:.3f}: moved what a later continuation wrote ({', '.join(parts)}) to "
            f"{aside.name}/, so the run's logs and checkpoints read as one history"]
