"""User overrides of a preset: typed ``section.key=value`` assignments (style guide principle 3).

Every override is an :class:`Override` ``(flag, key, value)``: ``flag`` is what the user typed (``--batch`` or
``--set run.batch``) so messages name it; ``key`` is the dotted path in the :class:`TrainConfig`
(``run.batch``, ``model.camera.fov_max_deg``); ``value`` is a python value or, for ``--set``, the raw string,
type-checked against the field's annotation (bool, int, float, str, Optional[...], tuple[str, ...]). The options of
``3dgp train`` that set config values, and the keys they set, are one table: :mod:`stages.train.flags`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from stages.common.configs import coerce_value, replace_nested
from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import check_combinations, deferred_combinations, field_types


@dataclass(frozen=True)
class Override:
    """One user-set value."""

    flag: str  # the option as typed, e.g. "--batch" or "--set loss.gamma"
    key: str  # dotted config path, e.g. "run.batch"
    value: Any  # python value, or the raw string of a --set


def label_error(exc: ConfigValueError, overrides: list[Override]) -> ConfigValueError:
    """``exc`` naming the option the user typed: the latest given option among the fields at fault (else the
    field's own option, ``stages.train.flags.option_for``); other fields in the message are named the same way
    (a ``--set`` field by its key)."""
    from stages.train.flags import KEY_OPTIONS, option_for

    typed: dict[str, tuple[int, str]] = {}
    for i, ov in enumerate(overrides):
        typed[ov.key] = (i, ov.flag)
    given = [typed[k] for k in exc.keys if k in typed]
    option = max(given)[1] if given else option_for(exc.keys[0])
    names = {}
    for key in set(exc.keys) | set(KEY_OPTIONS):
        flag = typed.get(key, (0, KEY_OPTIONS.get(key, key)))[1]
        names[key] = key if flag.startswith("--set") else flag
    return exc.labelled(option, names)


def _field_type(obj: Any, key: str, flag: str) -> Any:
    """The annotation of the dotted ``key``, walking nested dataclasses; a one-line error naming ``flag`` when
    the key does not exist."""
    parts = key.split(".")
    current, tp = obj, None
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(current):
            raise BadOptionError(flag, f"{'.'.join(parts[:i])} is not a config section")
        known = field_types(type(current))
        if part not in known:
            prefix = ".".join(parts[:i])
            raise BadOptionError(flag, f"unknown config key {key!r} (fields of {prefix or 'the config'}: "
                                       f"{', '.join(known)})")
        tp, current = known[part], getattr(current, part)
    return tp


def get_value(cfg: Any, key: str) -> Any:
    """The value at a dotted ``key``."""
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def set_value(cfg: Any, key: str, value: Any, flag: str | None = None) -> Any:
    """A copy of ``cfg`` with the dotted ``key`` set to ``value`` (type-checked and converted)."""
    flag = flag or f"--set {key}"
    new = coerce_value(value, _field_type(cfg, key, flag), key, flag)
    try:
        return replace_nested(cfg, {key: new})
    except ConfigValueError as exc:  # a __post_init__ check of a section
        raise label_error(exc, [Override(flag, key, value)]) from None
    except BadOptionError as exc:
        raise BadOptionError(flag, exc.message) from None


def parse_set(text: str) -> Override:
    """``"section.key=value"`` -> :class:`Override` (value kept as a string until applied)."""
    if "=" not in text:
        raise BadOptionError("--set", f"expected section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise BadOptionError("--set", f"expected section.key=value, got {text!r}")
    return Override(flag=f"--set {key}", key=key, value=value.strip())


def apply_overrides(cfg: Any, overrides: list[Override]) -> Any:
    """Apply overrides in order (later ones win); each value is checked as it is set, combinations of fields once
    all are set (so the order of the options does not matter)."""
    with deferred_combinations():
        for ov in overrides:
            cfg = set_value(cfg, ov.key, ov.value, ov.flag)
    try:
        check_combinations(cfg)
    except ConfigValueError as exc:
        raise label_error(exc, list(overrides)) from None
    return cfg
