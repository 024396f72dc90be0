"""Map exceptions to one-line messages (the CLI's single error boundary uses this table)."""
from __future__ import annotations

import errno


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
