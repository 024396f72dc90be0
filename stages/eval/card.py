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
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

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
