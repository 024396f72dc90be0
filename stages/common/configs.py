"""The one config toolkit: dict <-> frozen dataclass conversion and value coercion for every config (issue 11).

Used by ``ModelConfig`` (``stages.nn.config``), ``TrainConfig`` and its ``--set`` overrides (``stages.train``) and by
checkpoints (``stages.common.checkpoint``):

* :func:`plain` -- a JSON-safe copy (tuples -> lists, keys -> str), what ``config.json`` and checkpoints store;
* :func:`coerce_value` -- one value (a JSON scalar or a command-line string) converted to a field's annotation
  (``bool``, ``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]``); the words none/null/auto mean None;
* :func:`from_plain` -- a nested dataclass rebuilt from :func:`plain` output, every value coerced by its field's
  annotation, unknown keys refused, missing keys left at their defaults (so older files still load);
* :func:`replace_nested` -- a copy with fields replaced at any depth (dotted keys or nested dicts); the presets'
  ``with_overrides``, ``replace_section`` and the ``--set`` path (``stages.train.overrides.set_value``) all use it.

Value *validation* (ranges, finiteness, combinations) stays in the dataclasses themselves
(:class:`stages.common.validate.Checked`), so a dict, a flag and a ``--set`` are checked by the same code.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import field_types

NONE_WORDS = frozenset({"none", "null", "auto"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def plain(value: Any) -> Any:
    """A JSON-safe copy: tuples -> lists and dict keys -> str, recursively (dataclasses via ``asdict``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce_value(value: Any, tp: Any, name: str, flag: str | None = None, strict: bool = False) -> Any:
    """``value`` converted to annotation ``tp``, or ``BadOptionError(flag or name, ...)`` naming the field.

    ``strict`` (typed JSON values): strings are not parsed into other types, and only ``None`` is None."""
    option = flag or name
    origin = typing.get_origin(tp)
    text_value = isinstance(value, str) and not strict
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        # "auto" means None ("chosen for you") except where the field is text that says auto itself (--threads auto)
        none_words = NONE_WORDS - {"auto"} if args == [str] else NONE_WORDS
        if value is None or (text_value and value.strip().lower() in none_words):
            return None
        assert len(args) == 1, tp
        return coerce_value(value, args[0], name, flag, strict)
    if origin is tuple:
        if text_value and value.strip().lower() in NONE_WORDS:
            return ()
        if strict and not isinstance(value, (list, tuple)):
            raise BadOptionError(option, f"expected a list, got {value!r}")
        items = [v.strip() for v in value.split(",") if v.strip()] if text_value else list(value)
        item_type = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return tuple(coerce_value(v, item_type, name, flag, strict) for v in items)
    if strict and tp in (bool, int, float) and (isinstance(value, str) or (tp is bool) != isinstance(value, bool)):
        raise BadOptionError(option, f"expected {'true/false' if tp is bool else tp.__name__}, got {value!r}")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in TRUE_WORDS | FALSE_WORDS:
                return text in TRUE_WORDS
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            return str(value).strip() if isinstance(value, str) else str(value)
    except (TypeError, ValueError):
        where = "" if option.endswith(name) else f"{name}: "
        raise BadOptionError(option, f"{where}expected {_type_name(tp)}, got {value!r}") from None
    if dataclasses.is_dataclass(tp):
        raise BadOptionError(option, f"{name} is a config section; set one of its fields ({name}.<field>)")
    raise BadOptionError(option, f"{name}: unsupported field type {_type_name(tp)}")


def from_plain(cls: type, data: Any, prefix: str = "", what: str = "config key") -> Any:
    """Rebuild dataclass ``cls`` from :func:`plain` output; errors are ``ConfigValueError`` naming the dotted key
    (``prefix`` + field). ``what`` names the kind of key in the unknown-key message."""
    if not isinstance(data, dict):
        raise ConfigValueError(prefix.rstrip(".") or "config", f"expected a mapping, got {type(data).__name__}")
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigValueError(prefix + unknown[0], f"unknown {what} (known: {', '.join(types_)})")
    kwargs = {}
    for name, value in data.items():
        tp = types_[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_plain(tp, value, f"{prefix}{name}.", what)
            continue
        try:
            kwargs[name] = coerce_value(value, tp, prefix + name, strict=True)
        except BadOptionError as exc:
            raise ConfigValueError(prefix + name, exc.message) from None
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        raise exc.prefixed(prefix.rstrip(".")) from None


def replace_nested(config: Any, changes: dict[str, Any]) -> Any:
    """A copy of frozen dataclass ``config`` with ``changes`` applied, at any depth.

    A key is a field name or a dotted path (``"loss.gamma"``); a dict given for a field that is itself a dataclass
    changes fields inside it (``{"camera": {"fov_max_deg": 30}}``). Values are used as given (no coercion; see
    :func:`coerce_value`). Every changed section is rebuilt, so its ``__post_init__`` checks run; a
    ``ConfigValueError`` names the full dotted key. An unknown field raises ``ConfigValueError`` too.
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    known = field_types(type(config))
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in known:
            raise ConfigValueError(key, f"unknown config key (fields here: {', '.join(known)})")
        section = getattr(config, head)
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif isinstance(value, dict) and dataclasses.is_dataclass(section):
            nested.setdefault(head, {}).update(value)
        else:
            top[head] = value
    for head, sub in nested.items():
        try:
            top[head] = replace_nested(getattr(config, head), sub)
        except ConfigValueError as exc:
            raise exc.prefixed(head) from None
    return dataclasses.replace(config, **top)
