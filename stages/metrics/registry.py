"""Metric names: what each computes and what it needs (3DGP ref §6.1-§6.6; issue 8's registry).

A name resolves to a :class:`MetricSpec` (kind + number of generated samples):

* the paper's fixed-size names: ``fid2k_full`` (2048 fakes, as the official code), ``fid10k_full``, ``fid50k_full``,
  ``kid50k_full``, ``is50k``, ``nfs256`` (all "full": every real item, mirroring off);
* plain kinds whose sample count comes from ``--num-gen`` (or the kind's default): ``fid``, ``kid``, ``is``, ``nfs``,
  and the geometry scores ``mvc`` (multi-view consistency), ``depth`` (depth realism), ``camera`` (posterior camera);
* sized forms ``<kind><N>[k][_full]`` such as ``fid256``, ``kid1k``, ``nfs32``, ``mvc64`` (``k`` = x1000).

:data:`KINDS` says, per kind, whether lower is better, which inputs it needs (``generator``: a checkpoint; ``reals``:
a reference dataset; ``detector``: the Inception network; ``is_weights``: Inception logits) and where it is computed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from stages.common.errors import BadOptionError


@dataclass(frozen=True)
class MetricKind:
    """How one kind of metric is computed and what it needs."""

    lower_is_better: bool
    needs: frozenset[str]  # subset of {"generator", "reals", "detector", "is_weights"}
    default_num: int  # samples when neither the name nor --num-gen says
    description: str


KINDS: dict[str, MetricKind] = {
    "fid": MetricKind(True, frozenset({"reals", "detector"}), 2048,
                      "Frechet Inception distance, N fakes vs all reals (ref §6.2)"),
    "kid": MetricKind(True, frozenset({"reals", "detector"}), 2048,
                      "kernel Inception distance, unbiased, 100 subsets of min(1000, N) (ref §6.4)"),
    "is": MetricKind(False, frozenset({"is_weights"}), 2048, "Inception score, 10 splits (ref §6.4)"),
    "nfs": MetricKind(False, frozenset({"generator"}), 256,
                      "non-flatness score of raw depth, frontal prior, 0.5 density quantile (ref §6.5)"),
    "mvc": MetricKind(True, frozenset({"generator"}), 64,
                      "multi-view consistency: photometric error after warping a view into a nearby one"),
    "depth": MetricKind(True, frozenset({"generator", "reals"}), 256,
                        "depth realism: 1-D Wasserstein distance of normalized depth to the dataset's depth"),
    "camera": MetricKind(False, frozenset({"generator"}), 2048,
                         "posterior camera statistics (mean/std of yaw, pitch, FoV, look-at) against the prior"),
}

FIXED: dict[str, tuple[str, int]] = {
    "fid2k_full": ("fid", 2048),
    "fid10k_full": ("fid", 10_000),
    "fid50k_full": ("fid", 50_000),
    "kid50k_full": ("kid", 50_000),
    "is50k": ("is", 50_000),
    "nfs256": ("nfs", 256),
}

MAX_SAMPLES_ENV = "THREEDGP_MAX_SAMPLES"
DEFAULT_MAX_SAMPLES = 200_000  # 4x fid50k_full: memory and time grow with it (see stages.metrics.memory)


def max_samples() -> int:
    """The largest sample count a metric may ask for (``THREEDGP_MAX_SAMPLES`` raises it)."""
    try:
        return int(os.environ.get(MAX_SAMPLES_ENV, DEFAULT_MAX_SAMPLES))
    except ValueError:
        return DEFAULT_MAX_SAMPLES


def check_sample_count(num: int, option: str, what: str | None = None) -> None:
    """One line when ``num`` samples are fewer than 2 or more than :func:`max_samples`."""
    what = what or option
    if num < 2:
        raise BadOptionError(option, f"{what}: needs at least 2 samples, got {num}")
    if num > max_samples():
        raise BadOptionError(option, f"{what}: {num:,} samples exceed the limit of {max_samples():,} (set "
                                     f"{MAX_SAMPLES_ENV}=N to allow more)")


_SIZED_RE = re.compile(r"^(fid|kid|is|nfs|mvc|depth|camera)(\d+)(k?)(_full)?$")


@dataclass(frozen=True)
class MetricSpec:
    """A resolved metric name."""

    name: str  # as the user wrote it (lower case), e.g. "fid2k_full", "kid"
    kind: str  # a key of KINDS
    num_gen: int | None  # generated samples; None = take --num-gen or the kind's default

    @property
    def info(self) -> MetricKind:
        return KINDS[self.kind]

    @property
    def lower_is_better(self) -> bool:
        return self.info.lower_is_better

    @property
    def needs_detector(self) -> bool:
        return "detector" in self.info.needs

    @property
    def needs_reals(self) -> bool:
        return "reals" in self.info.needs

    @property
    def needs_generator(self) -> bool:
        return "generator" in self.info.needs

    def resolved(self, num_gen: int | None = None) -> "MetricSpec":
        """This spec with ``num_gen`` filled in (the name's own size wins over ``num_gen``)."""
        if self.num_gen is not None:
            return self
        return replace(self, num_gen=int(num_gen) if num_gen is not None else self.info.default_num)


def parse_metric(name: str, option: str = "--metrics") -> MetricSpec:
    """``"fid2k_full"`` -> ``MetricSpec("fid2k_full", "fid", 2048)``; an unknown name raises BadOptionError."""
    key = name.strip().lower()
    if key in FIXED:
        kind, num = FIXED[key]
        return MetricSpec(key, kind, num)
    if key in KINDS:
        return MetricSpec(key, key, None)
    match = _SIZED_RE.match(key)
    if not match:
        raise BadOptionError(option, f"unknown metric {name!r} (known: {', '.join(available_names())}, or a kind "
                                     f"with a size such as fid256, kid1k, nfs32)")
    kind, number, kilo, _ = match.groups()
    num = int(number) * (1000 if kilo else 1)
    check_sample_count(num, option, name)
    return MetricSpec(key, kind, num)


def parse_metric_list(text: str | list[str] | tuple[str, ...], option: str = "--metrics") -> list[MetricSpec]:
    """A comma list (or sequence) of names -> specs, in order, duplicates dropped; empty raises BadOptionError."""
    names = text.split(",") if isinstance(text, str) else list(text)
    specs: list[MetricSpec] = []
    for name in names:
        if name.strip():
            spec = parse_metric(name, option)
            if spec not in specs:
                specs.append(spec)
    if not specs:
        raise BadOptionError(option, "no metric given")
    return specs


def available_names() -> list[str]:
    """Every fixed name and plain kind, for --help and error messages."""
    return [*FIXED, *KINDS]
