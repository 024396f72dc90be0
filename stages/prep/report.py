"""The dataset meta record and ``prep_report.json`` (issue 3: format and robustness; 3DGP ref §7)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stages.data.format import FORMAT_VERSION
from stages.prep.config import PrepConfig
from stages.prep.sources.units import SourcePlan

REPORT_NAME = "prep_report.json"


def code_version() -> str:
    """The installed 3dgp package version (``unknown`` when running from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("threedgp")
    except PackageNotFoundError:
        return "unknown"


def build_meta(
    cfg: PrepConfig,  # the run's options (prep_args, command line)
    plan: SourcePlan,  # the source (class names, description)
    depth_info: dict | None,  # meta["depth"], None when no depth
    embedder_info: dict | None,  # meta["embedder"], None when no embedder
    num_items: int,  # items written
    label_counts: list[int],  # items per class
    num_skipped: int,  # unreadable inputs
) -> dict[str, Any]:
    """The meta record written last into the dataset (fields: ``stages.data.format.REQUIRED_META_FIELDS``)."""
    return {
        "format_version": FORMAT_VERSION,
        "resolution": cfg.resolution,
        "num_items": num_items,
        "class_names": list(plan.class_names),
        "label_counts": list(label_counts),
        "source": plan.description,
        "prep_args": cfg.prep_args(),
        "prep_command": cfg.command_line(),
        "depth": depth_info,
        "has_depth_gt": plan.kind == "toy",
        "embedder": embedder_info,
        "num_skipped": num_skipped,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code_version(),
    }


def write_report(
    directory: Path,  # the dataset directory (partial or final)
    cfg: PrepConfig,  # the run's options
    num_inputs: int,  # inputs considered (after instance selection)
    num_items: int,  # items written
    skipped: list[dict],  # [{"source": ..., "reason": ...}] over all (resumed) runs
    num_resumed: int,  # items already done before this run
    seconds: float,  # wall time of this run
) -> Path:
    """Write ``prep_report.json``: counts, and every skipped input with its reason."""
    report = {
        "command": cfg.command_line(),
        "num_inputs": num_inputs,
        "num_items": num_items,
        "num_skipped": len(skipped),
        "num_resumed": num_resumed,
        "seconds": round(seconds, 3),
        "skipped": skipped,
    }
    path = directory / REPORT_NAME
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
