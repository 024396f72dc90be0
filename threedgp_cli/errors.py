"""Map exceptions to one-line messages (the CLI's single error boundary uses this table)."""
from __future__ import annotations

import errno
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(message: str) -> str:
    """``message`` as a single line: ANSI codes dropped, line breaks and runs of blanks folded into one space."""
    return " ".join(_ANSI.sub("", message).split())


def _param_name(param) -> str | None:
    if param is None:
        return None
    opts = getattr(param, "opts", None)
    if getattr(param, "param_type_name", "") == "option" and opts:
        return max(opts, key=len)
    return getattr(param, "human_readable_name", None) or (param.name or "").upper() or None


def click_errors(name: str) -> tuple[type, ...]:
    """The click exception class ``name`` from Typer's bundled click and from click itself (where they exist)."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if cls is not None and cls not in found:
            found.append(cls)
    return tuple(found)


def describe_usage(exc) -> str:
    """A click/Typer usage error as ``<option>: <what is wrong> (see 3dgp CMD --help)``."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    message = exc.format_message().rstrip(".") if hasattr(exc, "format_message") else str(exc)
    if isinstance(exc, click_errors("NoSuchOption")):
        similar = list(exc.possibilities or [])[:3]  # closest first
        guess = f"; did you mean {' or '.join(similar)}?" if similar else ""
        return f"{exc.option_name}: no such option{guess}{hint}"
    if isinstance(exc, click_errors("MissingParameter")):
        kind = "option" if getattr(exc.param, "param_type_name", "") == "option" else "argument"
        return f"{_param_name(exc.param) or exc.param_hint}: missing {kind}{hint}"
    if isinstance(exc, click_errors("BadParameter")):
        name = _param_name(exc.param) or (exc.param_hint if isinstance(exc.param_hint, str) else None)
        text = exc.message.rstrip(".")
        return f"{name}: {text}{hint}" if name else f"{text}{hint}"
    if isinstance(exc, click_errors("BadOptionUsage")):
        text = re.sub(r"^Option '[^']*' ", "", exc.message.rstrip("."))
        return f"{exc.option_name}: {text}{hint}"
    return f"{message}{hint}"


def describe(exc: BaseException) -> str | None:
    """A one-line message for an exception a user can act on, or ``None`` for a bug (shown as a traceback)."""
    from stages.common.errors import ThreeDGPError

    if isinstance(exc, ThreeDGPError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: no such file or directory"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"{exc.filename or 'output'}: no space left on device"
    name = type(exc).__name__
    if name == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
        return "CUDA out of memory: lower --batch-gpu (gradient accumulation keeps the global batch)"
    return None
