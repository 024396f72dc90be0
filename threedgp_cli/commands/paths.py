"""Path options that refuse an empty string (issue 19 acceptance 2).

Typer turns ``''`` into ``Path('.')``, so ``--outdir ''`` or ``3dgp prep toy ''`` would silently mean the current
folder. Commands give their path arguments and options ``parser=nonempty_path``: the raw text is checked before it
becomes a Path, and an empty one is a usage error (one line, exit 1, through the app's error boundary).
"""
from __future__ import annotations

from pathlib import Path

import typer


def nonempty_path(value: str | Path) -> Path:
    """Typer parser of a path option or argument: ``''`` (or only spaces) is refused."""
    if isinstance(value, Path):  # a default value
        return value
    if not str(value).strip():
        raise typer.BadParameter("must not be empty (an empty path would mean the current folder)")
    return Path(value)
