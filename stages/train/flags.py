"""The ``3dgp train`` options that set config values: one table, read both ways (issue 20 §3).

:data:`FLAGS` says, for every such option, which config key(s) it sets: a :class:`Flag` (``--batch 8``) sets its
key to the value given, a :class:`Switch` (``--no-depth``) sets fixed values. The command line's options become
typed :class:`~stages.train.overrides.Override` s through it (:func:`flag_overrides`), and a config error names the
field at fault by the option that sets it (:func:`option_for`, used by ``stages.train.overrides.label_error``).
Fields without an option are set, and named, as ``--set <key>=<value>``.

The order of the table is the order of the overrides, so where several options given together are at fault, a
message names the one listed last (``--batch 7 --gpus 2``: ``--gpus``; a switch after the value it contradicts).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stages.common.errors import BadOptionError
from stages.train.overrides import Override, parse_set


@dataclass(frozen=True)
class Flag:
    """An option that sets one config key to the value given."""

    option: str  # as typed, e.g. "--batch"
    key: str  # dotted config key, e.g. "run.batch"
    parse: Callable[[Any], Any] | None = None  # the value as given -> the config value (None: as given)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def overrides(self, value: Any) -> list[Override]:
        return [Override(self.option, self.key, self.parse(value) if self.parse else value)]


@dataclass(frozen=True)
class Switch:
    """An option without a value that sets fixed values."""

    option: str  # as typed, e.g. "--no-depth"
    sets: tuple[tuple[str, Any], ...]  # (dotted config key, value) pairs, in order

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.sets)

    def overrides(self, value: Any) -> list[Override]:
        return [Override(self.option, key, fixed) for key, fixed in self.sets]


def _metrics(text: str) -> str:
    """``--metrics``: a comma list, or ``none`` for no metrics (the config's empty list)."""
    if not text.strip(" ,"):
        raise BadOptionError("--metrics", "no metric given (use 'none' for no metrics)")
    return "" if text.strip().lower() == "none" else text


FLAGS: tuple[Flag | Switch, ...] = (
    Flag("--kimg", "run.kimg"),
    Flag("--batch", "run.batch"),
    Flag("--batch-gpu", "run.batch_gpu"),
    Flag("--gamma", "loss.gamma"),
    Flag("--seed", "run.seed"),
    Flag("--gpus", "run.gpus"),
    Flag("--device", "run.device"),
    Flag("--max-rollbacks", "run.max_rollbacks"),
    Flag("--precision", "run.precision"),
    Flag("--minutes", "run.minutes"),
    Flag("--min-kimg", "run.min_kimg"),
    Flag("--threads", "run.threads", parse=str),
    Flag("--kd-weight", "loss.kd_weight"),
    Flag("--depth-adaptor-p", "loss.depth_adaptor_p"),
    Flag("--data", "data.path", parse=str),
    Flag("--metrics", "run.metrics", parse=_metrics),
    Switch("--no-depth-adaptor", (("model.depth_adaptor.enabled", False),)),
    Switch("--no-camera-adaptor", (("model.camera.adaptor_enabled", False),)),
    Switch("--no-depth", (("model.img_channels", 3), ("model.depth_adaptor.enabled", False))),
)

# Config key -> the option that sets it (the first in the table: --no-depth-adaptor for the adaptor's switch).
KEY_OPTIONS: dict[str, str] = {}
for _flag in FLAGS:
    for _key in _flag.keys:
        KEY_OPTIONS.setdefault(_key, _flag.option)
del _flag, _key


def option_for(key: str) -> str:
    """How a user sets config ``key``: its own option (``--batch``) or ``--set <key>``."""
    return KEY_OPTIONS.get(key, f"--set {key}")


def flag_overrides(given: Mapping[str, Any], set_texts: Sequence[str] = ()) -> list[Override]:
    """The options the user gave, by their spelling (``{"--batch": 8, "--no-depth": True}``; ``None`` / ``False`` =
    not given), then the ``--set`` texts, as typed ``Override`` s in that order (module docstring)."""
    known = {flag.option for flag in FLAGS}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"not options of 3dgp train that set config values: {', '.join(unknown)}")
    overrides: list[Override] = []
    for flag in FLAGS:
        value = given.get(flag.option)
        if value is not None and value is not False:
            overrides += flag.overrides(value)
    return overrides + [parse_set(text) for text in set_texts]
