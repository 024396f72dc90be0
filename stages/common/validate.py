"""Checks shared by the frozen config dataclasses (``TrainConfig`` sections, ``ModelConfig`` parts; issue 13 §4).

Every config value is validated where it is defined: a dataclass that mixes in :class:`Checked` checks, on every
construction (so also on every ``dataclasses.replace``):

1. each field's type against its annotation (``bool``, ``int``, ``float``, ``str``, ``X | None``,
   ``tuple[X, ...]``, nested dataclasses); ints are accepted for floats and stored as floats, lists for tuples;
2. finiteness of every float;
3. the ranges in the class's ``_RANGES`` table (``{"gamma": Range(0)}``) and its ``_check_values`` hook;
4. combinations of fields (``_check_combinations``), unless :func:`deferred_combinations` is active -- used while
   several options are applied one after the other, so that an intermediate state does not count; the caller
   runs :func:`check_combinations` on the result.

Failures raise :class:`~stages.common.errors.ConfigValueError` naming the field (relative to the dataclass);
``stages.train.overrides`` re-labels it with the option the user typed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from stages.common.errors import ConfigValueError

_DEFER: ContextVar[bool] = ContextVar("threedgp_defer_combinations", default=False)


@contextlib.contextmanager
def deferred_combinations():
    """Inside this block, dataclasses check single fields only (not combinations of fields)."""
    token = _DEFER.set(True)
    try:
        yield
    finally:
        _DEFER.reset(token)


@lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """Evaluated annotations of a dataclass's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Range:
    """An allowed interval; ``None`` = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False  # high itself is not allowed

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_type(name: str, value: Any, tp: Any) -> Any:
    """``value`` if it has annotation ``tp`` (ints become floats, lists tuples); else ConfigValueError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        assert len(args) == 1, tp
        return check_type(name, value, args[0])
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ConfigValueError(name, f"expected a list, got {value!r}")
        item = typing.get_args(tp)[0]
        return tuple(check_type(name, v, item) for v in value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise ConfigValueError(name, f"expected a {tp.__name__} section, got {value!r}")
        return value
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[tp](value)
    if not ok:
        raise ConfigValueError(name, f"expected {_type_name(tp)}, got {value!r}")
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigValueError(name, f"must be finite, got {value}")
    return value


def check_range(name: str, value: Any, rng: Range) -> None:
    """ConfigValueError unless every number in ``value`` (a number or a tuple of them) lies in ``rng``."""
    for v in value if isinstance(value, tuple) else (value,):
        if not rng.contains(v):
            raise ConfigValueError(name, f"must be {rng.describe()}, got {_num(v)}")


class Checked:
    """Mixin of the frozen config dataclasses: validation on construction (module docstring)."""

    _RANGES: ClassVar[dict[str, Range]] = {}

    def __post_init__(self) -> None:
        for name, tp in field_types(type(self)).items():
            value = getattr(self, name)
            checked = check_type(name, value, tp)
            if checked is not value:
                object.__setattr__(self, name, checked)
            rng = self._RANGES.get(name)
            if rng is not None and checked is not None:
                check_range(name, checked, rng)
        self._check_values()
        if not _DEFER.get():
            self._check_combinations()

    def _check_values(self) -> None:
        """Single-field rules that a ``Range`` cannot say."""

    def _check_combinations(self) -> None:
        """Rules over several fields of this dataclass (its nested sections check themselves)."""


class CheckedRequest(Checked):
    """Mixin of a command's request (``EvalRequest``, ``ExportRequest``, ``TrainRequest``): checked like a config,
    but an error names the option the user typed (field ``num_gen`` -> ``--num-gen``; ``_ARGUMENTS`` names the
    positional ones, e.g. ``{"ckpt": "CKPT"}``)."""

    _ARGUMENTS: ClassVar[dict[str, str]] = {}

    @classmethod
    def option_name(cls, field: str) -> str:
        """How the command line spells the field ``field``."""
        return cls._ARGUMENTS.get(field, "--" + field.replace("_", "-"))

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ConfigValueError as exc:
            raise exc.labelled(self.option_name(exc.keys[0]), {k: self.option_name(k) for k in exc.keys}) from None


def check_combinations(obj: Any, prefix: str = "") -> None:
    """Run ``_check_combinations`` of ``obj`` and of every nested section, innermost first."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_combinations(value, f"{prefix}{f.name}.")
    if isinstance(obj, Checked):
        try:
            obj._check_combinations()
        except ConfigValueError as exc:
            raise exc.prefixed(prefix.rstrip(".")) from None


def one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ConfigValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigValueError(name, f"expected one of {', '.join(choices)}, got {value!r}")
