"""The metric card: everything needed to recompute a number (issue 8; peers-and-user-pain §3.3).

A card is one JSON file per evaluated checkpoint or image set:

* ``metrics``: per metric its name, kind, value (and std where defined), number of fakes and reals, or the reason
  it is unavailable, plus kind-specific details (KID subsets, NFS bins, ...);
* ``fakes``: how they were made (checkpoint path, sha256 and kimg; seed, truncation, camera sampling, noise mode) or
  which image set they are;
* ``reference``: the reference set (path, item count, resolution, meta/listing sha256, sha256 of the exact uint8
  images the statistics were computed from, the statistics cache file);
* ``detector``: the feature extractor's file and sha256, and the resize mode (``stylegan`` or ``clean``);
* ``code_version``, ``device``, the number of ``processes``, ``torch``, ``tf32`` (always false: metrics run with
  TF32 off, ``stages.nn.precision.full_fp32``), wall time, creation time and the command line that reproduces it.

Cards are strict JSON: a non-finite number is written as the string ``"nan"``, ``"inf"`` or ``"-inf"``.

``3dgp eval`` writes cards (:func:`build_card`, :func:`write_json_atomic`); everything that reads one back (the
ablation table, the export report, the demo's verdict) goes through :func:`load_card`, which returns a typed, frozen
:class:`MetricCard` with the non-finite numbers restored. The card lives here, below the stages, so that every stage
may read it without importing another stage.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stages.common.errors import BadFileError

CARD_FORMAT = "3dgp-metric-card"
CARD_VERSION = 1
DETECTOR_NAME = "StyleGAN3 TorchScript port of TF Inception-v3 (inception-2015-12-05), pool3 2048-d"


def code_version() -> str:
    from stages.common.sysinfo import package_version

    return package_version("threedgp") or "unknown"


STATISTICS = "mean and biased covariance (divide by N, StyleGAN3 / the official code; clean-fid divides by N - 1)"


def detector_card(detector) -> dict | None:
    """What the card records about the feature detector (None when no metric loaded one)."""
    if detector is None:
        return None
    return {"name": DETECTOR_NAME, "path": detector.path, "sha256": detector.sha256, "resize": detector.resize,
            "statistics": STATISTICS}


def build_card(results: list, *, fakes: dict, reference: dict | None, detector: dict | None, device: str,
               wall_seconds: float, command: str, checkpoint: dict | None = None, processes: int = 1) -> dict:
    """Assemble the card dict (module docstring)."""
    import torch

    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": [r.to_dict() for r in results],
        "checkpoint": checkpoint,
        "fakes": fakes,
        "reference": reference,
        "detector": detector,
        "code_version": code_version(),
        "torch": torch.__version__,
        "device": device,
        "processes": processes,
        "tf32": False,
        "wall_seconds": round(wall_seconds, 2),
        "command": command,
    }


def strict_json(obj):
    """``obj`` with every non-finite float replaced by its name ("nan", "inf", "-inf"): valid JSON everywhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json_atomic(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(strict_json(obj), indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def append_metrics_line(run_dir: str | Path, record: dict) -> Path:
    """Append one JSON line to ``<run_dir>/metrics.jsonl`` (the file training's periodic metrics write too)."""
    path = Path(run_dir) / "metrics.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(strict_json(record), default=str, allow_nan=False) + "\n")
    return path


def metrics_record(card: dict, card_path: Path) -> dict:
    """The ``metrics.jsonl`` line of an evaluated snapshot: kimg, values, and where the card is."""
    ckpt = card.get("checkpoint") or {}
    record = {"kimg": ckpt.get("kimg"), "source": "eval", "snapshot": Path(ckpt.get("path", "")).name,
              "seconds": card["wall_seconds"], "card": str(card_path)}
    for m in card["metrics"]:
        if m["value"] is not None:
            record[m["name"]] = m["value"]
    return record


# ----------------------------------------------------------------------------------------------------------------
# Reading a card back
# ----------------------------------------------------------------------------------------------------------------

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _number(value: Any) -> float | None:
    """A card's number: ``"nan"`` / ``"inf"`` / ``"-inf"`` (strict JSON) back to floats; None and non-numbers
    to None."""
    if isinstance(value, str):
        return _NON_FINITE.get(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _restore(value: Any) -> Any:
    """``value`` with the strings of non-finite numbers turned back into floats (recursively)."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class CardMetric:
    """One metric of a card (``stages.metrics.compute.MetricResult`` as written)."""

    name: str  # as requested, e.g. "fid2k_full"
    kind: str  # registry kind, e.g. "fid"
    value: float | None  # None when unavailable
    std: float | None = None
    num_fakes: int = 0
    num_reals: int = 0
    unavailable: str | None = None  # the reason, when the metric could not be computed
    seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # kind-specific, read-only

    @property
    def available(self) -> bool:
        return self.unavailable is None and self.value is not None


@dataclass(frozen=True)
class CardCheckpoint:
    """The evaluated checkpoint (None on a card of an image set)."""

    path: str | None
    kimg: float | None
    sha256: str | None = None


@dataclass(frozen=True)
class MetricCard:
    """A metric card as read back (module docstring): the fields its readers use, typed and read-only."""

    path: str  # where it was read from ("" for a card built from a dict)
    metrics: tuple[CardMetric, ...]
    checkpoint: CardCheckpoint | None = None
    fakes: Mapping[str, Any] | None = None
    reference: Mapping[str, Any] | None = None
    detector: Mapping[str, Any] | None = None
    device: str | None = None
    created: str | None = None
    code_version: str | None = None
    command: str | None = None
    wall_seconds: float | None = None

    def metric(self, name: str) -> CardMetric | None:
        """The metric called ``name`` (e.g. ``"fid2k_full"``), or None."""
        return next((m for m in self.metrics if m.name == name), None)

    def first_of_kind(self, kind: str) -> CardMetric | None:
        """The first available metric of registry kind ``kind`` (e.g. ``"nfs"``), or None."""
        return next((m for m in self.metrics if m.kind == kind and m.available), None)

    def values(self) -> dict[str, float]:
        """Metric name -> value, of the available metrics."""
        return {m.name: m.value for m in self.metrics if m.available}


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return MappingProxyType(_restore(value)) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def card_from_dict(card: Any, path: str | os.PathLike = "") -> MetricCard:
    """A :class:`MetricCard` from a card's JSON object (``path`` names it in errors)."""
    if not isinstance(card, dict) or not isinstance(card.get("metrics"), list):
        raise BadFileError(path, "not a metric card (no 'metrics' list)")
    metrics = []
    for m in card["metrics"]:
        if not isinstance(m, dict):
            continue
        metrics.append(CardMetric(
            name=str(m.get("name", "?")), kind=str(m.get("kind", "")), value=_number(m.get("value")),
            std=_number(m.get("std")), num_fakes=_count(m.get("num_fakes")), num_reals=_count(m.get("num_reals")),
            unavailable=_text(m.get("unavailable")), seconds=_number(m.get("seconds")) or 0.0,
            details=_mapping(m.get("details")) or MappingProxyType({})))
    ckpt = card.get("checkpoint")
    checkpoint = CardCheckpoint(_text(ckpt.get("path")), _number(ckpt.get("kimg")), _text(ckpt.get("sha256"))) \
        if isinstance(ckpt, dict) and ckpt else None
    return MetricCard(
        path=os.fspath(path), metrics=tuple(metrics), checkpoint=checkpoint, fakes=_mapping(card.get("fakes")),
        reference=_mapping(card.get("reference")), detector=_mapping(card.get("detector")),
        device=_text(card.get("device")), created=_text(card.get("created")),
        code_version=_text(card.get("code_version")), command=_text(card.get("command")),
        wall_seconds=_number(card.get("wall_seconds")))


def load_card(path: str | os.PathLike) -> MetricCard:
    """Read the metric card at ``path``; a missing, unreadable or malformed file is one :class:`BadFileError`."""
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFileError(path, f"not a JSON metric card: {exc}") from exc
    return card_from_dict(card, path)
