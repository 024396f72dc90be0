"""Numbered run directories ``<outdir>/00003-<preset>-<dataset>/`` (EDM2/StyleGAN naming, style guide §2).

A run directory holds ``config.json``, ``log.txt``, ``stats.jsonl``, ``metrics.jsonl``, ``training-state-*.pt``,
``snapshot-*.pt`` and ``fakes*.png``. The number is one more than the largest existing one.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)
_RUN_RE = re.compile(r"^(\d{5})-")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def run_number(path: Path) -> int | None:
    """The leading run number of a run directory name, or ``None``."""
    match = _RUN_RE.match(path.name)
    return int(match.group(1)) if match else None


def next_run_dir(outdir: str | Path, desc: str, create: bool = True) -> Path:
    """The next numbered run directory ``<outdir>/<NNNNN>-<desc>``; created unless ``create`` is False."""
    outdir = Path(outdir)
    numbers = [n for p in outdir.glob("*") if p.is_dir() and (n := run_number(p)) is not None] if outdir.is_dir() else []
    run_dir = outdir / f"{(max(numbers) + 1) if numbers else 0:05d}-{_slug(desc)}"
    if create:
        run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def latest_run_dir(outdir: str | Path) -> Path | None:
    """The highest-numbered run directory under ``outdir`` that has a ``config.json``, or ``None``."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return None
    runs = [(n, p) for p in outdir.iterdir() if p.is_dir() and (n := run_number(p)) is not None]
    runs = [(n, p) for n, p in runs if (p / "config.json").is_file()]
    return max(runs)[1] if runs else None


def attach_log_file(run_dir: str | Path, logger_name: str = "stages") -> logging.Handler:
    """Tee every ``stages.*`` log record into ``<run_dir>/log.txt`` (append); returns the handler to remove later."""
    handler = logging.FileHandler(Path(run_dir) / "log.txt", mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger(logger_name)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
