"""Checks, before any work, that a prep can fit the machine (issue 13 §3).

* The dataset format numbers items with 9 digits: at most 999,999,999 inputs (not overridable).
* Disk: the items still to write, at a *lower-bound* size per item (PNG of a simple image ~0.25 byte per pixel,
  depth ~0.5, the toy's raw float32 ground truth 4), must fit in the free space where ``OUT.partial`` lives.
* Memory: the decoded batches in flight (``--batch-size`` images at ``--resolution``, a few batches ahead) must fit
  in the available memory.

Both estimates are deliberately low, so only requests that cannot possibly fit are refused (``--num
100000000000``); ``--no-resource-check`` skips the disk and memory checks for the rare real case where the
estimate is wrong (a file system that compresses, memory that will be freed).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from stages.common.errors import BadOptionError
from stages.common.sysinfo import available_memory
from stages.prep.config import MAX_ITEMS, PrepConfig
from stages.prep.sources.units import SourcePlan
from stages.prep.workers import PREFETCH_BATCHES

_BATCHES_IN_FLIGHT = PREFETCH_BATCHES + 2  # queued ahead, the one being encoded, and its PNGs/arrays in transit
_SIZE_OPTION = {"toy": "--num", "folder": "--max-images", "zip": "--max-images", "lsun": "--max-images",
                "imagenet": "--max-per-class"}


def item_bytes_lower_bound(resolution: int, has_depth: bool, toy: bool) -> int:
    """A size no item at ``resolution`` can be smaller than, in practice (bytes)."""
    pixels = resolution * resolution
    return int(pixels * (0.25 + 0.5 * has_depth + 4.0 * toy)) + 150


def check_resources(cfg: PrepConfig, plan: SourcePlan, depth_name: str, done: int) -> None:
    """BadOptionError naming the option to change when the run cannot fit; ``done`` inputs are already written."""
    option = _SIZE_OPTION[plan.kind]
    total = len(plan.units)
    if total > MAX_ITEMS:
        raise BadOptionError(option, f"{total:,} inputs are more than a dataset can hold ({MAX_ITEMS:,})")
    if not cfg.resource_check:
        return
    expected = math.ceil(total * cfg.options.keep_ratio) if plan.kind == "imagenet" else total
    remaining = max(0, expected - done)
    need = remaining * item_bytes_lower_bound(cfg.resolution, depth_name != "none", plan.kind == "toy")
    where = _existing_ancestor(cfg.out.parent)
    free = shutil.disk_usage(where).free
    if need > free:
        raise BadOptionError(
            option, f"{remaining:,} items at {cfg.resolution}x{cfg.resolution} need at least {_size(need)} of disk, "
            f"but {where} has {_size(free)} free; lower {option}, or pass --no-resource-check if you know better"
        )
    batch_bytes = cfg.batch_size * cfg.resolution * cfg.resolution * 3 * 2  # pixels + their PNG, per image
    need_memory = _BATCHES_IN_FLIGHT * batch_bytes
    available = available_memory()
    if available is not None and need_memory > available:
        raise BadOptionError(
            "--batch-size", f"{cfg.batch_size} images of {cfg.resolution}x{cfg.resolution} per batch need about "
            f"{_size(need_memory)} of memory, but {_size(available)} is available; lower --batch-size, or pass "
            "--no-resource-check if you know better"
        )


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(num: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if num < 1024 or unit == "PiB":
            return f"{num:,.0f} {unit}" if unit == "bytes" else f"{num:,.1f} {unit}"
        num /= 1024
    raise AssertionError
