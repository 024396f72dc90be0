"""The CLI's rich consoles and logging setup (stage code only uses ``logging.getLogger(__name__)``)."""
from __future__ import annotations

import logging
import os

from rich.console import Console

console = Console()  # results (tables, paths) go to stdout
err_console = Console(stderr=True)  # progress, warnings, errors


def setup_logging(verbose: bool = False) -> None:
    """Route stage loggers to stderr through rich; ``THREEDGP_DEBUG=1`` or ``verbose`` shows debug lines."""
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose or os.environ.get("THREEDGP_DEBUG") == "1" else logging.INFO
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    root = logging.getLogger("stages")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
