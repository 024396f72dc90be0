"""``3dgp compare``: one table of several runs (``scripts/reproduce/ablations.sh``) -> ``stages.eval.compare``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from threedgp_cli.commands.paths import nonempty_path


def compare(
    out: Annotated[Path, typer.Argument(
        help="A folder with one sub-folder per run: <variant>/metrics.json (a card of `3dgp eval`) and "
             "<variant>/runs/*/metrics.jsonl (its training curve), as scripts/reproduce/ablations.sh writes.",
        show_default=False, parser=nonempty_path)],
    target_fid: Annotated[Optional[float], typer.Option(
        "--target-fid", help="The FID of the 'kimg to FID' column (default: the baseline's final training FID).",
        show_default=False)] = None,
) -> None:
    """Compare runs: final metrics and the kimg each took to reach a target FID (also written to OUT/comparison.md)."""
    from stages.eval.compare import compare as compare_runs

    typer.echo(compare_runs(out, target_fid), nl=False)
