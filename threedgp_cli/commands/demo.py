"""``3dgp demo summary``: the demo's 3D verdict from two metric cards (``stages.demo``; run by scripts/demo.sh)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from threedgp_cli.commands.paths import nonempty_path

demo_app = typer.Typer(
    help="The `make demo` chain's own steps (scripts/demo.sh runs prep, train, eval and export itself).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

@demo_app.command("summary")
def summary(
    out: Annotated[Path, typer.Argument(help="The demo's output folder (summary.md is written there).",
                                        show_default=False, parser=nonempty_path)],
    init: Annotated[Path, typer.Option("--init", help="Metric card of the snapshot at initialisation.",
                                       show_default=False, parser=nonempty_path)],
    final: Annotated[Path, typer.Option("--final", help="Metric card of the final snapshot.", show_default=False,
                                        parser=nonempty_path)],
) -> None:
    """Is the demo model 3D? Judge the final metric card against the initial one; print and write OUT/summary.md."""
    from stages.demo import SummaryRequest, render_markdown, run

    criteria = run(SummaryRequest(out=str(out), init_card=str(init), final_card=str(final)))
    typer.echo(render_markdown(criteria), nl=False)  # the verdict is information, not an error: exit 0
