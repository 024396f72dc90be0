"""The project's exception tree.

Stage code raises these for anything a user can fix (a bad option, a missing or malformed file). The CLI's one
error boundary (``threedgp_cli.app.main``) prints ``str(exc)`` as a single line and exits with code 1; internal
invariants keep using ``assert``. Messages name the option or the file first, EDM2-style: ``--resolution: ...``.
"""
from __future__ import annotations

import os


class ThreeDGPError(Exception):
    """Base class of every user-facing error."""


class BadOptionError(ThreeDGPError):
    """An option has a bad value. ``str()`` is ``"--option: message"``."""

    def __init__(self, option: str, message: str):
        self.option = option if option.startswith("-") else f"--{option.replace('_', '-')}"
        self.message = message
        super().__init__(f"{self.option}: {message}")


class BadFileError(ThreeDGPError):
    """A file or folder is missing, unreadable or malformed. ``str()`` is ``"path: message"``."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class DataFormatError(BadFileError):
    """A dataset's LMDB does not follow the expected format (unknown version, missing field)."""


class CheckpointError(BadFileError):
    """A checkpoint cannot be read or does not match what was asked of it."""


class MetricUnavailable(ThreeDGPError):
    """A metric cannot be computed with what was given; eval prints it as 'X unavailable: ...'."""


class OpsBuildError(ThreeDGPError):
    """A custom CUDA op failed to build (fatal only under ``THREEDGP_STRICT_OPS=1``)."""


class TrainingDiverged(ThreeDGPError):
    """Training diverged more often than ``--max-rollbacks`` allows."""
