"""The project's exception tree.

Stage code raises these for anything a user can fix (a bad option, a missing or malformed file). The CLI's one
error boundary (``threedgp_cli.app.main``) prints ``str(exc)`` as a single line and exits with code 1; internal
invariants keep using ``assert``. Messages name the option or the file first, EDM2-style: ``--resolution: ...``.
"""
from __future__ import annotations

import os
import re

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.]+)\}")


class ThreeDGPError(Exception):
    """Base class of every user-facing error."""


class BadOptionError(ThreeDGPError):
    """An option has a bad value. ``str()`` is ``"--option: message"``."""

    def __init__(self, option: str, message: str):
        self.option = option if option.startswith("-") else f"--{option.replace('_', '-')}"
        self.message = message
        super().__init__(f"{self.option}: {message}")


class ConfigValueError(BadOptionError):
    """A config field, or a combination of fields, has a bad value (raised by a config dataclass's checks).

    ``keys`` are dotted field paths relative to the dataclass that raised it, the field at fault first; the
    message may name other fields as ``{key}`` placeholders. Whoever knows how the user set the values
    (``stages.train.overrides``) re-labels it with the option the user typed (:meth:`labelled`); until then
    ``str()`` is ``"<key>: <message>"``.
    """

    def __init__(self, keys: str | tuple[str, ...], template: str, option: str | None = None,
                 names: dict[str, str] | None = None):
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.template = template
        self.names = dict(names or {})
        self.option = option or self.keys[0]
        self.message = _PLACEHOLDER.sub(lambda m: self.names.get(m.group(1), m.group(1)), template)
        ThreeDGPError.__init__(self, f"{self.option}: {self.message}")

    def prefixed(self, prefix: str) -> "ConfigValueError":
        """The same error with every key (and placeholder) seen from the enclosing dataclass ``prefix``."""
        if not prefix:
            return self
        return ConfigValueError(tuple(f"{prefix}.{k}" for k in self.keys),
                                _PLACEHOLDER.sub(lambda m: "{" + f"{prefix}.{m.group(1)}" + "}", self.template))

    def labelled(self, option: str, names: dict[str, str]) -> "ConfigValueError":
        """The same error naming ``option`` first and the other fields by ``names`` (key -> option text)."""
        return ConfigValueError(self.keys, self.template, option, names)


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
