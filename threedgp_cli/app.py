"""The ``3dgp`` Typer app: registers the commands and holds the one error boundary (``main``)."""
from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from threedgp_cli import __version__
from threedgp_cli.commands import compare, demo, doctor, export, info, prep, train
from threedgp_cli.commands import eval as eval_command

app = typer.Typer(
    name="3dgp",
    help="3DGP: 3D-aware generation on ImageNet-scale data (prep -> train -> eval -> export).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"3dgp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug log lines.")] = False,
) -> None:
    """3DGP command-line tools. Set THREEDGP_DEBUG=1 for full tracebacks."""
    from threedgp_cli.console import setup_logging

    setup_logging(verbose)


# The commands, in the order `3dgp --help` lists them (each a thin wrapper over one stage entry point).
app.add_typer(prep.prep_app, name="prep")
app.command("info")(info.info)
app.command("train")(train.train)
app.command("eval")(eval_command.eval_)
app.command("export")(export.export)
app.command("compare")(compare.compare)
app.command("doctor")(doctor.doctor)
app.add_typer(demo.demo_app, name="demo")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point and the CLI's one error boundary.

    A :class:`stages.common.errors.ThreeDGPError` (or an OS error about a file), and a command-line usage error
    (a bad type, a missing argument, an unknown option), become one line on stderr and exit code 1; anything else
    is a bug and keeps its traceback. ``THREEDGP_DEBUG=1`` always shows tracebacks. ``--help`` and ``--version``
    exit 0. This function always ends in ``SystemExit``.
    """
    from stages.common.allocator import tune_glibc_malloc
    from threedgp_cli.errors import click_errors, describe, describe_usage, one_line

    tune_glibc_malloc()  # before torch starts its threads, so that they share the reusable heap (the module says why)
    try:
        code = app(args=argv, prog_name="3dgp", standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    except click_errors("NoArgsIsHelpError") as exc:  # bare `3dgp` or a group without a command: its help
        typer.echo(exc.ctx.get_help())
        raise SystemExit(0) from None
    except click_errors("ClickException") as exc:
        sys.stderr.write(f"Error: {one_line(describe_usage(exc))}\n")
        raise SystemExit(1) from None
    except click_errors("Abort"):
        sys.stderr.write("Aborted.\n")
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        message = describe(exc)
        if message is None or os.environ.get("THREEDGP_DEBUG") == "1":
            raise
        sys.stderr.write(f"Error: {one_line(message)}\n")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)

