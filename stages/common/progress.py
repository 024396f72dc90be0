"""Progress bars for long stage work (rich), showing items/s and ETA; quiet off rank 0.

Stage code never imports typer, but may show progress: ``for x in track(items, total=n, description="prep"):``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def _enabled() -> bool:
    return os.environ.get("RANK", "0") == "0" and os.environ.get("THREEDGP_NO_PROGRESS") != "1"


def _columns(unit: str):
    from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn

    class RateColumn(TextColumn):
        def render(self, task):  # items per second over the task so far
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:7.1f} {unit}/s" if speed else f"    -- {unit}/s")

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(""),
        TimeRemainingColumn(),
    )


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "img", completed: int = 0):
    """Context manager yielding ``advance(n)``; a no-op off rank 0 or with THREEDGP_NO_PROGRESS=1."""
    if not _enabled():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(*_columns(unit), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, completed=completed)
        yield lambda n=1: bar.advance(task, n)


def track(items: Iterable[T], total: int | None = None, description: str = "", unit: str = "img") -> Iterator[T]:
    """Iterate over ``items`` with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(total, description, unit) as advance:
        for item in items:
            yield item
            advance(1)
